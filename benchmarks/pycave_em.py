"""pycave's GaussianMixture on the same data and start as ``gmm_vs_sklearn.py --pycave``.

Runs under pycave's own interpreter (its virtual environment pins an old torch and PyTorch
Lightning), so it imports nothing of pushforward. Given the data and the start means as .npy
files, it fits full-batch EM for up to the given number of iterations (pycave derives the start
covariances from the means in one extra pass) and prints one JSON line: seconds, iterations and
the mean training log-likelihood.

    PYCAVE_PYTHON benchmarks/pycave_em.py X.npy MEANS.npy COV ITERATIONS THREADS
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings

import numpy as np
import torch


def main() -> None:
    x_path, means_path, cov, iterations, threads = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from pycave.bayes import GaussianMixture

    x = torch.from_numpy(np.load(x_path)).float()  # [N, D]
    means = torch.from_numpy(np.load(means_path)).float()  # [K, D]
    quiet = {"progress_bar_refresh_rate": 0, "weights_summary": None, "logger": False}
    gm = GaussianMixture(
        len(means),
        covariance_type=cov,
        init_means=means,
        convergence_tolerance=0.0,
        trainer_params={"max_epochs": int(iterations), "checkpoint_callback": False, **quiet},
    )
    t = time.perf_counter()
    gm.fit(x)
    seconds = time.perf_counter() - t
    ll = -gm.score(x)  # score is the mean negative log-likelihood
    print(json.dumps({"seconds": seconds, "iterations": gm.num_iter_, "ll": ll}))


if __name__ == "__main__":
    main()
