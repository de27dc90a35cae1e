"""The Gaussian mixture past one process and past memory, timed through the command line a user
types. Run by hand, one heavy job at a time:

    python benchmarks/gmm_scale.py [--rows 1000000] [--dim 64] [--components 64]
        [--iterations 20] [--big-rows 10000000] [--skip-big]

On a float32 .npy of points from a random mixture (written once into a temporary folder):

1. One process (all threads) against two under ``torchrun --nproc_per_node=2`` (one thread
   each): seconds per EM iteration, and the difference of their final log-likelihoods.
2. The same fit in memory against read from disk (``--data-memory`` below the file's size):
   seconds per EM iteration, the cost of streaming.
3. A ``--big-rows`` file (10M x 64 float32: 2.6 GB) read from disk: seconds per EM iteration,
   the peak anonymous memory (the process's own: heap, tensors) and the peak resident memory,
   which also counts the pages of the mapped file the OS keeps cached (the OS's to reclaim).

Seconds per iteration come from each run's metrics.jsonl (the ``seconds`` column, logged at
every iteration), from the third logged iteration to the last, so the k-means start, start-up
and writing are left out. Every run uses ``--tol 0`` (all iterations run) and the same seed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

GIB = 2**30


def write_mixture(path: Path, n: int, d: int, k: int, seed: int = 0) -> None:
    """n points [n, d] float32 from a random mixture of k Gaussians, a million rows at a time."""
    rng = np.random.default_rng(seed)
    means = 3 * rng.normal(size=(k, d))
    spread = 0.5 + rng.random(size=(k, d))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 1_000_000):
        m = min(1_000_000, n - s)
        label = rng.integers(k, size=m)
        out[s : s + m] = means[label] + spread[label] * rng.normal(size=(m, d))
    out.flush()
    del out


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status field in bytes (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def run(argv: list[str], threads: int) -> dict[str, float]:
    """Run one command; its peak anonymous and resident memory, summed over its processes,
    polled every 50 ms."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"anon": 0, "rss": 0}

    def poll() -> None:
        while proc.poll() is None:
            pids = _descendants(proc.pid)
            peak["anon"] = max(peak["anon"], sum(_status(p, "RssAnon") for p in pids))
            peak["rss"] = max(peak["rss"], sum(_status(p, "VmRSS") for p in pids))
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{err.decode()[-3000:]}")
    return {k: v / GIB for k, v in peak.items()}


def fit(
    data: Path, out: Path, k: int, iterations: int, procs: int, memory: float | None
) -> dict[str, float]:
    """One `pushforward train gmm` run: seconds per iteration, final log-likelihood, memory."""
    cmd = ["-m", "pushforward", "train", "gmm", "--data", f"npy:{data}", "--out", str(out)]
    cmd += ["--components", str(k), "--covariance", "diag", "--steps", str(iterations)]
    cmd += ["--tol", "0", "--log-every", "1", "--snapshots", "0", "--seed", "0"]
    if memory is not None:
        cmd += ["--data-memory", str(memory)]
    if procs > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *cmd]
    threads = max(1, (os.cpu_count() or 1) // procs)
    mem = run([sys.executable, *cmd], threads)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "log_likelihood" in r]
    per = (rows[-1]["seconds"] - rows[2]["seconds"]) / (len(rows) - 3)
    return {"per_iteration": per, "ll": rows[-1]["log_likelihood"], **mem}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--components", type=int, default=64)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--big-rows", type=int, default=10_000_000)
    p.add_argument("--big-iterations", type=int, default=6)
    p.add_argument("--skip-big", action="store_true")
    p.add_argument("--only-big", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "x.npy"
        k, n, d = args.components, args.rows, args.dim
        if not args.only_big:
            write_mixture(data, n, d, k)
            size = data.stat().st_size / GIB
            print(f"[{n:,}, {d}] float32 ({size:.2f} GiB), K = {k} diagonal, {args.iterations} EM")
            print(
                "| run | s per EM iteration | time against 1 process in memory | final LL "
                "| peak anon GiB | peak RSS GiB |"
            )
            print("|---|---|---|---|---|---|")
            runs = [
                ("1 process, in memory", 1, None),
                ("2 processes (torchrun), in memory", 2, None),
                ("1 process, read from disk", 1, size / 8),
                ("2 processes (torchrun), read from disk", 2, size / 8),
            ]
            base = None
            for i, (name, procs, memory) in enumerate(runs):
                r = fit(data, root / f"run{i}", k, args.iterations, procs, memory)
                base = base or r["per_iteration"]
                print(
                    f"| {name} | {r['per_iteration']:.3f} | {r['per_iteration'] / base:.2f}x "
                    f"| {r['ll']:.6f} | {r['anon']:.2f} | {r['rss']:.2f} |",
                    flush=True,
                )
            data.unlink()
        if args.skip_big:
            return
        big = root / "big.npy"
        write_mixture(big, args.big_rows, d, k)
        size = big.stat().st_size / GIB
        print(f"\n[{args.big_rows:,}, {d}] float32 ({size:.2f} GiB), read from disk, K = {k}")
        r = fit(big, root / "big", k, args.big_iterations, 1, 1.0)
        print(
            f"{r['per_iteration']:.2f} s per EM iteration, peak anonymous memory "
            f"{r['anon']:.2f} GiB, peak resident {r['rss']:.2f} GiB, final LL {r['ll']:.6f}"
        )


if __name__ == "__main__":
    main()
