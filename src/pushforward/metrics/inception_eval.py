"""Scores in the FID Inception's pool features, as papers report them: FID, KID and, for colour
images, precision/recall/density/coverage.

Reference features of a data set's split are computed once and cached (safetensors + JSON that
name the network, its weights' SHA-256, the preprocessing and n); the key is the weights and the
images themselves, so another file or other pixels never reuse them.

May import, of this package: data/download, data/rows, errors, files, metrics/features, metrics/inception,
metrics/scores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ..data.download import cache_dir
from ..data.rows import Examples, chunks
from ..errors import PushforwardError
from ..files import atomic_write_json, load_tensors, read_json, safe_name, save_tensors
from .features import prdc
from .inception import (
    PREPROCESSING,
    WEIGHTS_NAME,
    FIDInception,
    InceptionWeights,
    find_weights,
    load_inception,
    pool_features,
)
from .scores import FeatureStats, frechet_from_stats, kid

CACHE_FORMAT = 1


def images_key(images: Examples) -> str:
    """A content hash of a whole image set (every pixel, the shape): 16 hex digits."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    for chunk in chunks(images, 4096):
        h.update(chunk.cpu().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_features(
    images: Examples,
    label: str,
    weights: InceptionWeights,
    net: FIDInception | None = None,
) -> torch.Tensor:
    """Inception pool features [N, 2048] of ``images``, from the cache when computed before with
    the same weights; ``label`` (a data name and split) names the cache file for people."""
    key = f"{CACHE_FORMAT}-{weights.sha256}-{images_key(images)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = cache_dir() / "inception-features" / f"{safe_name(label, keep='-_')}-{digest}"
    tensors, meta = Path(f"{stem}.safetensors"), Path(f"{stem}.json")
    if tensors.is_file() and meta.is_file():
        try:
            info = read_json(meta)
            feats = load_tensors(tensors, info.get("sha256"))["features"]
            if feats.shape == (len(images), 2048):
                return feats
        except (PushforwardError, KeyError, AttributeError):
            pass  # a damaged cache entry is recomputed and replaced, never trusted
    feats = pool_features(net if net is not None else load_inception(weights), images)
    stem.parent.mkdir(parents=True, exist_ok=True)
    sha = save_tensors(tensors, {"features": feats})
    atomic_write_json(
        meta,
        {
            "format": CACHE_FORMAT,
            "data": label,
            "n": len(images),
            "network": WEIGHTS_NAME.removesuffix(".pth") + " pool features (2048)",
            "weights_sha256": weights.sha256,
            "preprocessing": PREPROCESSING,
            "sha256": sha,
        },
    )
    return feats


def feature_scores(
    real: torch.Tensor, fake: torch.Tensor, colour: bool, seed: int = 0, fd_key: str = "fid"
) -> dict[str, float]:
    """FID (or ``fd_key``), KID and its spread over subsets, and for colour images P/R/D/C on
    equal numbers of each (the first min(N, M) of a seeded shuffle)."""
    mu_r, s_r = FeatureStats.of(real).mean_cov("the reference set")
    mu_f, s_f = FeatureStats.of(fake).mean_cov("the other set")
    k_mean, k_std = kid(real, fake, seed)
    out = {fd_key: frechet_from_stats(mu_f, s_f, mu_r, s_r), "kid": k_mean, "kid_std": k_std}
    if colour:
        n = min(len(real), len(fake))
        g = torch.Generator().manual_seed(seed)
        r = real[torch.randperm(len(real), generator=g)[:n]]
        f = fake[torch.randperm(len(fake), generator=g)[:n]]
        out.update(prdc(r, f))
    return out


def inception_metrics(
    reference: Examples,
    label: str,
    fake: torch.Tensor,
    seed: int,
    weights_path: str | None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """eval --features inception: samples against the whole reference split (its features
    cached); ``device`` runs the network where the model is."""
    weights = find_weights(weights_path)
    net = load_inception(weights).to(device or torch.device("cpu"))
    real_f = cached_features(reference, label, weights, net)
    fake_f = pool_features(net, fake)
    out: dict[str, Any] = feature_scores(real_f, fake_f, reference.shape[1] == 3, seed)
    out.update(
        feature_n=len(fake_f),
        features="inception",
        feature_weights_sha256=weights.sha256,
        feature_weights_official=weights.official,
    )
    return out
