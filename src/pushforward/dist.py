"""Process group facts in one place: rank, world size, device. One process takes the same path.

Under ``torchrun`` the environment carries RANK/WORLD_SIZE; without it this is rank 0 of 1, so
callers never branch on "am I distributed".
"""

from __future__ import annotations

import os

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


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def resolve_device(name: str) -> torch.device:
    """Decide the device once, from the config; ``auto`` prefers CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PushforwardError(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise PushforwardError(f"--device {name!r} is not one of auto, cpu, cuda")
    return torch.device(name)
