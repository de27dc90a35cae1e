"""Run under torchrun by tests/test_dist.py: train through the Python API, then write this
rank's weight digest and, on rank 0, the held-out ELBO."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

import pushforward
from pushforward import dist


def main() -> None:
    out, model, options = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    torch.set_num_threads(1)
    run = pushforward.train(model, out=out / "run", progress=False, **options)
    digest = hashlib.sha256()
    for name, t in sorted(run.model.state_dict().items()):
        digest.update(name.encode() + t.detach().cpu().contiguous().numpy().tobytes())
    (out / f"weights-rank{dist.rank()}.txt").write_text(digest.hexdigest())


if __name__ == "__main__":
    main()
