"""Process group facts in one place: rank, world size, device. One process takes the same path.

Under ``torchrun`` the environment carries RANK/WORLD_SIZE; without it this is rank 0 of 1, so
callers never branch on "am I distributed".

May import, of this package: errors.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import timedelta

import torch

from .errors import PushforwardError


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def print0(*args: object, **kwargs: object) -> None:
    if is_main():
        print(*args, **kwargs)  # type: ignore[call-overload]


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def setup(device: torch.device, timeout_s: float = 600.0) -> bool:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA); True when this
    call created it, so the caller also tears it down. One process: nothing to join.

    ``timeout_s`` bounds every collective: without it a frozen (not dead) peer holds the others
    for gloo's 30 minutes, and their error is a traceback (see ``lost_peer``)."""
    if world_size() == 1 or torch.distributed.is_initialized():
        return False
    if not torch.distributed.is_available():
        raise PushforwardError(
            "WORLD_SIZE > 1 but this torch has no torch.distributed; run one process"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


def lost_peer(e: BaseException, timeout_s: float) -> PushforwardError | None:
    """The one-line error for a collective that timed out or lost a peer process, else None.

    Gloo raises such failures as plain RuntimeErrors whose text names its transport; NCCL's as
    DistError. (On CUDA, NCCL's watchdog may end the process itself after the timeout.)"""
    text = str(e)
    if not (isinstance(e, torch.distributed.DistError) or "gloo" in text.lower()):
        return None
    low = text.lower()
    if "timed out" in low or "timeout" in low:
        what = (
            f"waited --dist-timeout {timeout_s:g} s for the other processes at a collective: "
            "a peer is frozen or far slower"
        )
    elif "closed by peer" in low or "connection reset" in low or "broken pipe" in low:
        what = "lost its connection to another process, which probably crashed (see its log)"
    else:
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        what = f"failed in a collective: {first[:200]}"
    return PushforwardError(
        f"rank {rank()} of {world_size()} {what}; checkpoints/last.* keep the last checkpoint: "
        "rerun the same torchrun command plus --resume (raise --dist-timeout if a rank is only slow)"
    )


def teardown(together: bool) -> None:
    """Leave the process group; ``together`` (after a run every rank finished) first waits for
    every rank, since a rank that destroys its group and exits while a peer still has gloo
    traffic in flight can make that peer's worker threads abort it at exit. After an error
    there is no waiting: the peers may never arrive."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if together:
            with contextlib.suppress(RuntimeError):  # a peer already gone: leave anyway
                torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def mean_across(values: torch.Tensor) -> torch.Tensor:
    """The mean over processes of a tensor every process holds (itself with one process)."""
    if not active():
        return values
    out = values.clone()
    torch.distributed.all_reduce(out)
    return out / torch.distributed.get_world_size()


def sum_across(parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor summed over the processes, in one collective (themselves with one
    process), back on their own device."""
    if not active():
        return parts
    flat = torch.cat([p.reshape(-1) for p in parts]).to(_comm_device())
    torch.distributed.all_reduce(flat)
    out, at = [], 0
    for p in parts:
        out.append(flat[at : at + p.numel()].view_as(p).to(p.device))
        at += p.numel()
    return out


def _comm_device() -> str:
    """Where host-side values go for a collective: NCCL moves CUDA tensors only."""
    return "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"


def max_across(value: int) -> int:
    """The largest of an integer every process holds (itself with one process)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_comm_device())
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return int(t.item())


def any_across(flag: torch.Tensor) -> torch.Tensor:
    """A boolean tensor true when it is true on any process, left on its device (no sync)."""
    if not active():
        return flag
    t = flag.to(torch.float32)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return t > 0


def on_main(fn: Callable[[], str]) -> str:
    """Run ``fn`` on rank 0 only and give every process its text result, or its one-line
    PushforwardError, so a user error on rank 0 stops every rank instead of leaving the rest
    waiting at a barrier. Text crosses as bytes in a tensor: nothing is pickled."""
    if not active():
        return fn()
    failed, text = 0, ""
    if is_main():
        try:
            text = fn()
        except PushforwardError as e:
            failed, text = 1, str(e)
    dev = _comm_device()
    data = text.encode()
    head = torch.tensor([failed, len(data)], dtype=torch.int64, device=dev)
    torch.distributed.broadcast(head, 0)
    buf = torch.zeros(int(head[1]), dtype=torch.uint8, device=dev)
    if is_main() and data:
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(dev)
    torch.distributed.broadcast(buf, 0)
    text = bytes(buf.cpu().tolist()).decode()
    if int(head[0]):
        raise PushforwardError(text)
    return text


def resolve_device(name: str) -> torch.device:
    """Decide the device once, from the config; ``auto`` prefers CUDA."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available() and world_size() > 1:
        return torch.device("cuda", local_rank())  # one GPU per process under torchrun
    if name == "cuda" and not torch.cuda.is_available():
        raise PushforwardError(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise PushforwardError(f"--device {name!r} is not one of auto, cpu, cuda")
    return torch.device(name)
