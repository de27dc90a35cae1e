"""Read a PyTorch ``.pth`` state dict without unpickling it.

Published weights (the FID Inception's among them) come as ``torch.save`` files, which are
pickles; ``pickle.load`` on a file a user hands us would run whatever code it names. Here the
pickle is only parsed (``pickletools.genops`` yields opcodes, it executes nothing) and a small
stack machine builds the one thing a state dict is: a dict of names to tensors. Any other
callable or opcode is refused. Both of torch's layouts are read: the zip archive (torch >= 1.6)
and the legacy stream of pickles followed by the raw storages.

May import, of this package: errors.
"""

from __future__ import annotations

import io
import math
import pickletools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import PushforwardError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _Refused(Exception):
    """The pickle asks for something a state dict never holds."""


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _storage(pid: Any) -> _Storage:
    """A persistent id ('storage', torch.XStorage, key, location, numel[, view])."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise _Refused(f"persistent id {pid!r}")
    kind, key, numel = pid[1], pid[2], pid[4]
    if not (isinstance(kind, _Global) and kind.module == "torch" and kind.name in _DTYPES):
        raise _Refused(f"storage type {kind!r}")
    if len(pid) > 5 and pid[5] is not None:
        raise _Refused("a storage view")
    if not isinstance(numel, int) or numel < 0:
        raise _Refused(f"storage size {numel!r}")
    return _Storage(str(key), _DTYPES[kind.name], numel)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    ok = isinstance(storage, _Storage) and isinstance(offset, int)
    if not ok or not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise _Refused("a tensor of unexpected form")
    return _TensorRef(storage, offset, size, stride)


def _ordered_dict(*items: Any) -> dict:
    if items:
        raise _Refused("an OrderedDict built from arguments")
    return {}


_CALLABLES: dict[_Global, Callable[..., Any]] = {
    _Global("collections", "OrderedDict"): _ordered_dict,
    _Global("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    _Global("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


# opcodes that push the value they carry: numbers and strings
_VALUE_OPCODES: tuple[str, ...] = ("BININT", "INT", "LONG", "BINFLOAT", "FLOAT", "SHORT_BIN")
_VALUE_OPCODES += ("BINUNICODE", "UNICODE", "BINSTRING", "STRING", "BINBYTES")
_CONSTANTS: dict[str, Callable[[], Any]] = {
    "NONE": lambda: None,
    "NEWTRUE": lambda: True,
    "NEWFALSE": lambda: False,
    "EMPTY_DICT": dict,
    "EMPTY_LIST": list,
    "EMPTY_TUPLE": tuple,
}


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    if len(items) % 2:
        raise _Refused("a dict with a key and no value")
    return list(zip(items[::2], items[1::2], strict=True))


class _Stack:
    """The pickle machine's stack, its marks and its memo, and the opcodes that only move plain
    values between them (they call nothing)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def since_mark(self) -> list[Any]:
        start = self.marks.pop()
        items = self.items[start:]
        del self.items[start:]
        return items

    def containers(self, name: str) -> bool:
        """Tuples, lists and dicts built or extended; False when ``name`` is none of these."""
        stack = self.items
        if name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            stack[-n:] = [tuple(stack[-n:])]
        elif name == "TUPLE":
            stack.append(tuple(self.since_mark()))
        elif name in ("LIST", "DICT"):
            items = self.since_mark()
            stack.append(items if name == "LIST" else dict(_pairs(items)))
        elif name in ("APPEND", "APPENDS"):
            items = [stack.pop()] if name == "APPEND" else self.since_mark()
            stack[-1].extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = stack[-2:] if name == "SETITEM" else self.since_mark()
            if name == "SETITEM":
                del stack[-2:]
            stack[-1].update(_pairs(items))
        else:
            return False
        return True

    def memory(self, name: str, arg: Any) -> bool:
        """The memo written or read; False when ``name`` does neither."""
        if name in ("BINPUT", "LONG_BINPUT", "PUT"):
            self.memo[int(str(arg))] = self.items[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.items[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            self.items.append(self.memo[int(str(arg))])
        else:
            return False
        return True


def _interpret(stream: BinaryIO) -> Any:
    """Run one pickle's opcodes on a stack of plain values; refuse every other callable."""
    m = _Stack()
    stack = m.items
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in ("PROTO", "FRAME") or m.containers(name) or m.memory(name, arg):
            continue
        if name == "STOP":
            return stack.pop()
        if name == "MARK":
            m.marks.append(len(stack))
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            stack.append(_Global(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            stack.append(_Global(module, attr))
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name]())
        elif name in ("BINPERSID", "PERSID"):
            stack.append(_storage(stack.pop() if name == "BINPERSID" else arg))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            if func not in _CALLABLES or not isinstance(args, tuple):
                raise _Refused(f"a call to {func!r}")
            stack.append(_CALLABLES[func](*args))
        elif name == "BUILD":
            state = stack.pop()  # an OrderedDict's attributes (a state dict's _metadata)
            if not isinstance(stack[-1], dict) or not isinstance(state, dict):
                raise _Refused("object state")
        elif op.arg is not None and name.startswith(_VALUE_OPCODES):
            stack.append(arg)
        else:
            raise _Refused(f"pickle opcode {name}")
    raise _Refused("no STOP opcode")


def _materialise(obj: Any, data: Callable[[_Storage], bytes]) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not obj:
        raise _Refused("an object that is not a dict of tensors")
    storages: dict[str, torch.Tensor] = {}
    out = {}
    for name, ref in obj.items():
        if not isinstance(name, str) or not isinstance(ref, _TensorRef):
            raise _Refused(f"entry {name!r} is not a tensor")
        s = ref.storage
        if s.key not in storages:
            raw = bytearray(data(s))
            if len(raw) != s.numel * s.dtype.itemsize:
                raise _Refused(f"storage {s.key} holds {len(raw)} bytes, not {s.numel} values")
            storages[s.key] = (
                torch.frombuffer(raw, dtype=s.dtype) if raw else torch.empty(0, dtype=s.dtype)
            )
        if len(ref.size) != len(ref.stride):
            raise _Refused(
                f"tensor {name} with {len(ref.size)} sizes and {len(ref.stride)} strides"
            )
        extent = ref.offset + sum((n - 1) * st for n, st in zip(ref.size, ref.stride, strict=True))
        if math.prod(ref.size) and (
            ref.offset < 0 or min(ref.stride, default=0) < 0 or extent >= s.numel
        ):
            raise _Refused(f"tensor {name} reaches past its storage")
        out[name] = storages[s.key].as_strided(ref.size, ref.stride, ref.offset).clone()
    return out


def _read_zip(path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise _Refused("a zip archive without one data.pkl")
        root = pkl[0].split("/")[0]
        order = f"{root}/byteorder"
        if order in z.namelist() and z.read(order).strip() != b"little":
            raise _Refused("big-endian storages")
        obj = _interpret(io.BytesIO(z.read(pkl[0])))
        return _materialise(obj, lambda s: z.read(f"{root}/data/{s.key}"))


def _read_legacy(path: Path) -> dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        if _interpret(f) != _LEGACY_MAGIC or _interpret(f) != 1001:
            raise _Refused("a file that is neither a zip archive nor a legacy torch file")
        info = _interpret(f)
        if not isinstance(info, dict) or info.get("little_endian") is not True:
            raise _Refused("big-endian storages")
        obj = _interpret(f)
        keys = _interpret(f)
        if not isinstance(keys, list):
            raise _Refused("a storage list of unexpected form")
        data: dict[str, bytes] = {}
        for key in keys:
            numel = int.from_bytes(f.read(8), "little", signed=True)
            # the element size comes from the tensor that refers to the storage
            data[str(key)] = f.read(max(numel, 0) * _itemsize(obj, str(key)))
    return _materialise(obj, lambda s: data.get(s.key, b""))


def _itemsize(obj: Any, key: str) -> int:
    for ref in obj.values() if isinstance(obj, dict) else ():
        if isinstance(ref, _TensorRef) and ref.storage.key == key:
            return ref.storage.dtype.itemsize
    raise _Refused(f"storage {key} that no tensor uses")


def read_state_dict(path: str | Path, what: str, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save``d state dict at ``path``; ``what`` names the file in an
    error and ``fix`` says what to do about one."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except _Refused as e:
        raise PushforwardError(f"{what} {path}: not a plain state dict ({e}); {fix}") from None
    except (OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError, EOFError) as e:
        raise PushforwardError(
            f"{what} {path}: unreadable ({type(e).__name__}: {e}); {fix}"
        ) from None
