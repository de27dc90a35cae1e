"""``pushforward compare A B``: FID, KID (and P/R/D/C) between any two sets of images, the way
``python -m pytorch_fid A B`` scores two folders, so samples made by other tools can be scored
beside pushforward's. A and B are data names (``images:DIR``, ``npy:FILE``, a built-in set,
optionally ``NAME:train`` / ``NAME:test``) or run folders (that many of their samples).

May import, of this package: data, dist, errors, metrics/features, metrics/inception,
metrics/inception_eval, run, run_folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import Dataset, Examples, load_dataset
from ..dist import resolve_device
from ..errors import PushforwardError
from ..run import Run
from ..run_folder import CONFIG
from .features import classifier_for, embed
from .inception import find_weights, load_inception, pool_features
from .inception_eval import cached_features, feature_scores

RUN_SAMPLES = 10_000  # samples drawn from a run folder unless -n says otherwise
BIASED_BELOW = 2048  # FID from fewer images per set than feature dimensions is biased upward


@dataclass
class ImageSet:
    label: str
    images: Examples  # [N, C, H, W] in [0, 1]
    dataset: Dataset | None  # the labelled data behind it, for --features classifier
    cacheable: bool  # data on disk (features cached by content), not fresh samples


def image_set(spec: str, n: int | None, seed: int, data_dir: str | None) -> ImageSet:
    """A run folder's samples, or a data name's images (its test split, else all of it)."""
    path = Path(spec).expanduser()
    if path.is_dir() and (path / CONFIG).is_file():
        run = Run.load(path)
        if run.raw_data.kind != "images":
            raise PushforwardError(f"{spec}: the run was trained on points; compare scores images")
        images = run.sample(n or RUN_SAMPLES, seed)
        return ImageSet(f"{spec} ({len(images):,} samples)", images, run.raw_data, False)
    name, sep, split = spec.rpartition(":")
    if not (sep and name and split in ("train", "test")):
        name, split = spec, ""
    ds = load_dataset(name, data_dir)
    if ds.kind != "images":
        raise PushforwardError(f"{spec}: {name!r} holds 2-D points; compare scores images")
    held: Examples = ds.split(split) if split else (ds.test if ds.test is not None else ds.train)
    held = held[:n] if n else held
    label = f"{name}:{split or ('test' if ds.test is not None else 'all')}"
    return ImageSet(label, held, ds if ds.train_labels is not None else None, True)


def compare(
    a: ImageSet,
    b: ImageSet,
    features: str = "inception",
    feature_weights: str | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Scores of A against B (B the reference: precision is the share of A on B's manifold)."""
    out: dict[str, Any] = {"a": a.label, "b": b.label, "n_a": len(a.images), "n_b": len(b.images)}
    colour = a.images.shape[1] == 3 and b.images.shape[1] == 3
    if features == "inception":
        weights = find_weights(feature_weights)
        net = load_inception(weights).to(resolve_device(device))

        def feats(s: ImageSet) -> torch.Tensor:
            if s.cacheable:
                return cached_features(s.images, s.label, weights, net)
            return pool_features(net, s.images)

        out.update(feature_scores(feats(b), feats(a), colour, seed))
        out.update(features="inception", feature_weights_sha256=weights.sha256)
        out.update(feature_weights_official=weights.official)
        return out
    ds = a.dataset or b.dataset
    if ds is None:
        raise PushforwardError(
            "--features classifier: needs a labelled data set on one side (a built-in set or a "
            "run trained on one) to train its classifier on; use --features inception"
        )
    for s in (a, b):
        if tuple(s.images.shape[1:]) != ds.shape:
            raise PushforwardError(
                f"--features classifier: {s.label} has images of shape "
                f"{tuple(s.images.shape[1:])}, the {ds.name} classifier takes {ds.shape}; "
                "use --features inception"
            )
    classifier, _ = classifier_for(ds)
    real, fake = embed(classifier, b.images)[0], embed(classifier, a.images)[0]
    out.update(feature_scores(real, fake, True, seed, "fd"))
    out.update(features=f"classifier ({ds.name})")
    return out


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="FID/KID (and P/R/D/C) between two sets of images")
    p.add_argument("a", help="images scored: a data name (images:DIR, npy:FILE, NAME:test) or RUN")
    p.add_argument("b", help="the reference set, in the same forms")
    p.add_argument("--features", default="inception", choices=("inception", "classifier"))
    p.add_argument("--feature-weights", default=None, help="the Inception weights file (.pth)")
    p.add_argument("-n", type=int, default=None, help="images per set (runs: samples drawn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--data-dir", default=None, help="folder holding downloaded data sets")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_compare(args: argparse.Namespace) -> None:
    if args.n is not None and args.n < 1:
        raise PushforwardError(f"-n {args.n}: give at least 1 image per set")
    if args.feature_weights is not None and args.features != "inception":
        raise PushforwardError("--feature-weights: only with --features inception")
    a, b = (image_set(s, args.n, args.seed, args.data_dir) for s in (args.a, args.b))
    res = compare(a, b, args.features, args.feature_weights, args.seed, args.device)
    if min(len(a.images), len(b.images)) < BIASED_BELOW and args.features == "inception":
        print(
            f"note: FID from fewer than {BIASED_BELOW:,} images per set is biased upward; "
            "published scores use 10,000 to 50,000",
            file=sys.stderr,
        )
    if not res.get("feature_weights_official", True):
        print(
            "note: --feature-weights is not the published pt_inception file; these scores are "
            "not comparable with papers",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(res))
        return
    width = max(len(k) for k in res)
    for key, v in res.items():
        print(f"{key:<{width}}  {v:.6g}" if isinstance(v, float) else f"{key:<{width}}  {v}")
