"""Sample quality for images without internet: a small classifier per data set, trained once on
its training split and cached, whose penultimate features stand in for Inception's.

In that feature space: the Fréchet distance, precision and recall (Kynkäänniemi et al. 2019,
k = 3), density and coverage (Naeem et al. 2020, k = 5), and the KL of the predicted-class
histogram of samples from uniform. Each comes with its real-vs-real floor: a training sample
against the test sample of the same size, which is what a perfect model would score.

May import, of this package: data, data/download, errors, files, metrics/scores.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import MAX_CLASSES, Dataset, Examples, chunks
from ..data.download import cache_dir
from ..errors import PushforwardError
from ..files import atomic_write_json, load_tensors, read_json, safe_name, save_tensors
from .scores import frechet_distance

FEATURE_DIM = 128
FEATURE_NET_VERSION = 2  # part of the cache key: bump when FeatureNet or its training changes
CLASSIFIER_EPOCHS = {"digits": 40, "fashion-mnist": 6, "mnist": 3, "cifar10": 15}


class FeatureNet(nn.Module):
    """Two conv blocks (each two 3x3 convs and a 2x2 max-pool; 16 then 32 channels, small enough
    to train on two CPU cores in minutes), then a 128-d feature layer."""

    def __init__(self, shape: tuple[int, ...], classes: int) -> None:
        super().__init__()
        c, h, w = shape

        def block(i: int, o: int) -> list[nn.Module]:
            return [
                nn.Conv2d(i, o, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(o, o, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]

        self.body = nn.Sequential(*block(c, 16), *block(16, 32), nn.Flatten())
        self.feature = nn.Sequential(nn.Linear(32 * (h // 4) * (w // 4), FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] in [0, 1] -> [B, 128]."""
        return self.feature(self.body(x * 2 - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _fingerprint(ds: Dataset) -> str:
    h = hashlib.sha256()
    h.update(str((FEATURE_NET_VERSION, ds.name, tuple(ds.train.shape))).encode())
    h.update(ds.train[:: max(1, len(ds.train) // 512)].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def _accuracy(net: FeatureNet, x: Examples, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(c).argmax(1) for c in chunks(x, 1000)])
    return float((pred.cpu() == y.cpu()).double().mean())


def _fit(
    net: FeatureNet,
    opt: torch.optim.Optimizer,
    x: Examples,
    y: torch.Tensor,
    epochs: int,
    g: torch.Generator,
) -> None:
    """``epochs`` passes of cross-entropy over x [N, C, H, W] and labels y [N], in batches of 128."""
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def train_classifier(
    ds: Dataset, epochs: int | None = None, seed: int = 0
) -> tuple[FeatureNet, dict]:
    """Fit the feature classifier on the training split; report its test accuracy."""
    assert ds.train_labels is not None and ds.test is not None and ds.test_labels is not None
    classes = int(max(ds.train_labels.max(), ds.test_labels.max())) + 1
    torch.manual_seed(seed)
    net = FeatureNet(ds.shape, classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    epochs = epochs or CLASSIFIER_EPOCHS.get(ds.name, 10)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    x, y = ds.train.cpu(), ds.train_labels.cpu()
    with torch.enable_grad():  # trained on first use, wherever that is (a metric may not track)
        _fit(net, opt, x, y, epochs, g)
    info = {
        "data": ds.name,
        "classes": classes,
        "epochs": epochs,
        "seconds": round(time.perf_counter() - start, 1),
        "test_accuracy": _accuracy(net, ds.test, ds.test_labels),
        "n_train": len(x),
    }
    return net.eval(), info


def _classes(info: Any) -> int:
    """The class count a cached classifier's JSON records, checked: it sizes the network."""
    n = info.get("classes") if isinstance(info, dict) else None
    if type(n) is not int or not 1 <= n <= MAX_CLASSES:
        raise PushforwardError(f"classes {n!r} is not a class count from 1 to {MAX_CLASSES}")
    return n


def classifier_for(ds: Dataset) -> tuple[FeatureNet, dict]:
    """The cached classifier of this data set, trained on first use (safetensors + JSON)."""
    if ds.kind != "images" or ds.train_labels is None or ds.test is None or ds.test_labels is None:
        raise PushforwardError(
            f"image metrics need labelled train and test images; {ds.name!r} has none"
        )
    folder = cache_dir() / "classifiers"
    stem = folder / f"{safe_name(ds.name)}-{_fingerprint(ds)}"
    weights, meta = Path(f"{stem}.safetensors"), Path(f"{stem}.json")
    if weights.exists() and meta.exists():
        try:
            info = read_json(meta)
            net = FeatureNet(ds.shape, _classes(info))
            net.load_state_dict(load_tensors(weights))
            return net.eval(), info
        except (PushforwardError, RuntimeError) as e:  # a cache is rebuilt, never trusted
            reason = " ".join(str(e).splitlines())
            print(
                f"warning: {meta}: a damaged cached classifier ({reason}); training it again",
                file=sys.stderr,
            )
    net, info = train_classifier(ds)
    save_tensors(weights, net.state_dict())
    atomic_write_json(meta, info)
    return net, info


# ---------------------------------------------------------------- metrics in feature space


def _kth_nn_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row: [N]."""
    out = [torch.cdist(c, x).kthvalue(k + 1, dim=1).values for c in x.split(chunk)]  # +1: itself
    return torch.cat(out)


def prdc(
    real: torch.Tensor, fake: torch.Tensor, k_pr: int = 3, k_dc: int = 5, chunk: int = 2048
) -> dict[str, float]:
    """Precision, recall (k-NN manifolds, k = 3) and density, coverage (k = 5) of fake [M, F]
    against real [N, F]."""
    real, fake = real.float(), fake.float()
    r_pr, f_pr = _kth_nn_radius(real, k_pr), _kth_nn_radius(fake, k_pr)
    r_dc = _kth_nn_radius(real, k_dc)
    in_real_pr = torch.zeros(len(fake), dtype=torch.bool)
    density_hits = torch.zeros(len(fake))
    covered = torch.zeros(len(real), dtype=torch.bool)
    recalled = torch.zeros(len(real), dtype=torch.bool)
    for i, f in enumerate(fake.split(chunk)):
        d = torch.cdist(f, real)  # [m, N]
        sl = slice(i * chunk, i * chunk + len(f))
        in_real_pr[sl] = (d <= r_pr[None]).any(1)
        density_hits[sl] = (d <= r_dc[None]).float().sum(1)
        covered |= (d <= r_dc[None]).any(0)
        recalled |= (d <= f_pr[sl, None]).any(0)
    return {
        "precision": float(in_real_pr.double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(density_hits.sum() / (k_dc * len(fake))),
        "coverage": float(covered.double().mean()),
    }


def class_kl(logits: torch.Tensor, classes: int) -> float:
    """KL(predicted-class histogram || uniform) = log C - H(histogram); 0 when balanced."""
    hist = torch.bincount(logits.argmax(1), minlength=classes).double()
    p = hist / hist.sum()
    nz = p > 0
    return float(math.log(classes) + (p[nz] * p[nz].log()).sum())


@torch.no_grad()
def embed(net: FeatureNet, x: Examples) -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.cat([net.features(c.float().cpu()) for c in chunks(x, 1000)])
    return feats, net.head(feats)


def image_metrics(
    ds: Dataset, ref_all: Examples, other_all: Examples | None, fake: torch.Tensor, seed: int
) -> dict[str, float]:
    """All feature-space metrics (in the features of ``ds``'s classifier) for the samples
    against as many images drawn from ``ref_all``, with as many from ``other_all`` (the other
    split) against the same ones as the floors."""
    net, info = classifier_for(ds)
    assert ds.test is not None and other_all is not None
    n = min(len(fake), len(ref_all), len(other_all))
    g = torch.Generator().manual_seed(seed)
    ref = ref_all[torch.randperm(len(ref_all), generator=g)[:n]]
    other = other_all[torch.randperm(len(other_all), generator=g)[:n]]
    (f_ref, _), (f_fake, l_fake), (f_other, l_other) = (
        embed(net, ref),
        embed(net, fake[:n]),
        embed(net, other),
    )
    out: dict[str, float] = {
        "fd": frechet_distance(f_fake, f_ref),
        **prdc(f_ref, f_fake),
        "class_kl": class_kl(l_fake, info["classes"]),
    }
    floor = {
        "fd": frechet_distance(f_other, f_ref),
        **prdc(f_ref, f_other),
        "class_kl": class_kl(l_other, info["classes"]),
    }
    out.update({f"{k}_floor": v for k, v in floor.items()})
    out.update(feature_n=n, classifier_accuracy=info["test_accuracy"])
    return out
