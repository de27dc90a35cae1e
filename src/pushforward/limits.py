"""Memory a command is about to ask for, checked before it is allocated: a typo such as
``--latent-dim 100000000`` or ``sample -n 1000000000000`` is refused with one line naming the
option and the limit, instead of a failed allocation's traceback or the kernel's OOM killer.
Files are read the same way: their kind and size first (``read_file``).

May import, of this package: errors.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .errors import PushforwardError


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory free on ``device`` now: MemAvailable on Linux, the free physical pages elsewhere,
    the free memory of a CUDA device."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(need: float, what: str, fix: str, device: torch.device | str = "cpu") -> None:
    """Refuse ``need`` bytes for ``what`` when they exceed what ``device`` has free."""
    free = available_bytes(device)
    if need > free:
        raise PushforwardError(f"{what} needs {gib(need)} but {device} has {gib(free)} free; {fix}")


def check_model_fits(build: Callable[[], nn.Module], what: str, device: torch.device | str) -> None:
    """Refuse a model whose training state (weights, gradients, two Adam moments) cannot fit,
    counted before anything is allocated."""
    size = model_bytes(build)
    if size is not None:
        check_fits(
            4 * size,
            f"{what} ({size // 4:,} parameters)",
            "use a smaller --hidden, --latent-dim or --depth",
            device,
        )


def model_bytes(build: Callable[[], nn.Module]) -> int | None:
    """Bytes of the parameters and buffers ``build()`` would allocate, counted on the meta
    device (nothing allocated); None when the model cannot be built there."""
    try:
        with torch.device("meta"):
            model = build()
    except (RuntimeError, NotImplementedError):
        return None
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def out_of_memory(
    e: BaseException,
    device: torch.device | str,
    what: str = "a training step",
    fix: str = "lower --batch-size (or the model's --iw-samples, --hidden)",
) -> PushforwardError | None:
    """The one-line error for an allocation the device refused (CUDA's OutOfMemoryError, the
    CPU allocator's RuntimeError, numpy's MemoryError) in ``what``, else None."""
    text = str(e)
    refused = isinstance(e, (torch.OutOfMemoryError, MemoryError))
    if not (refused or "can't allocate memory" in text):
        return None
    cpu = re.search(r"tried to allocate (\d+) bytes", text)
    cuda = re.search(r"Tried to allocate ([\d.]+ [KMGT]iB)", text)
    asked = gib(int(cpu.group(1))) if cpu else cuda.group(1) if cuda else None
    return PushforwardError(
        f"{what} ran out of memory on {device}"
        + (f" (it asked for {asked} more)" if asked else "")
        + f"; {fix}"
    )


def read_file(path: Path, fix: str, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, its size checked first: a folder, a pipe or a
    device (/dev/zero) where a file belongs is refused instead of read forever, and a file past
    ``limit`` bytes, or past free memory, instead of read until the allocator fails.
    FileNotFoundError passes through for the caller's own message."""
    try:
        return _read_regular(path, fix, limit)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise PushforwardError(f"{path}: cannot read ({e.strerror}); {fix}") from None


def _read_regular(path: Path, fix: str, limit: int | None) -> bytes:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise PushforwardError(f"{path}: not a regular file (a folder, pipe or device); {fix}")
    if limit is not None and st.st_size > limit:
        raise PushforwardError(
            f"{path}: {st.st_size:,} bytes, more than the {limit:,} such a file may hold; {fix}"
        )
    check_fits(st.st_size, str(path), fix)
    with open(path, "rb") as f:
        return f.read(st.st_size + 1)  # a file growing while read is read no further


_ALLOCATOR_TUNED = False
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Let glibc's heap keep the memory a step frees, so the next step reuses it instead of
    asking the kernel for fresh zeroed pages. CPU tensors come straight from malloc, which by
    default returns large blocks (over 128 KiB) to the kernel on free: an MLP VAE step at batch
    128 then took about 1,800 page faults, a third of its time on 2 cores
    (docs/benchmarks.md). Process-wide and idempotent; True where it took effect (glibc).
    An allocator tuned in the environment (``MALLOC_*_``, ``GLIBC_TUNABLES``) is left as the
    user set it: they chose its trade, e.g. to hold a process's memory steady under a limit."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if any(k in os.environ for k in _MALLOC_ENV) or "malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return False
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    # blocks up to 32 MiB (glibc's largest threshold) come from the heap, which keeps up to
    # 256 MiB free at its top and grows 64 MiB at a time
    ok = mallopt(m_mmap_threshold, 32 * 2**20) == 1
    ok = mallopt(m_trim_threshold, 256 * 2**20) == 1 and ok
    ok = mallopt(m_top_pad, 64 * 2**20) == 1 and ok
    _ALLOCATOR_TUNED = ok
    return ok
