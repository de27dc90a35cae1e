"""The InceptionV3 that published FID and KID numbers are computed with: the TensorFlow graph
``inception-2015-12-05`` as ported to PyTorch for FID ("pt_inception-2015-12-05").

It is not torchvision's InceptionV3: the FID port pools its Mixed_5*/6*/7b branches with an
average that leaves the padding out, and Mixed_7c's pool branch takes a max; with torchvision's
blocks FID comes out about 1.5 lower. Module names match the published state dict, so its
weights load as they are. Input: images in [0, 1], any size, resized bilinearly to 299 x 299
and mapped to [-1, 1]; output: the 2,048-d pool features.

May import, of this package: data/download, data/rows, errors, metrics/pth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.download import cache_dir, fetch_verified, sha256_of
from ..data.rows import Examples, chunks
from ..errors import PushforwardError
from .pth import read_state_dict

POOL_DIM = 2048
CLASSES = 1008  # the TF graph's classifier (1,000 ImageNet classes and 8 unused)
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
)
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch hub's convention: the file name carries it
PREPROCESSING = "RGB in [0, 1] (grey repeated), bilinear to 299 x 299 (align_corners=False), x2-1"


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, as in TF), ReLU."""

    def __init__(self, cin: int, cout: int, **conv: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **conv)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TF's 3x3 average pool: padded positions do not count."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """Factorised 7x7 convolutions at 17 x 17."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = (
            {"kernel_size": (1, 7), "padding": (0, 3)},
            {"kernel_size": (7, 1), "padding": (3, 0)},
        )
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **col)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """Expanded filter bank at 8 x 8; ``max_pool``: Mixed_7c's pool branch takes a max."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        row, col = (
            {"kernel_size": (1, 3), "padding": (0, 1)},
            {"kernel_size": (3, 1), "padding": (1, 0)},
        )
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, **row)
        self.branch3x3_2b = BasicConv2d(384, 384, **col)
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, **row)
        self.branch3x3dbl_3b = BasicConv2d(384, 384, **col)
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(a), self.branch3x3_2b(a)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, dbl, self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """pt_inception-2015-12-05 up to its 2,048-d average pool (``fc`` is kept only so the
    published state dict loads whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(POOL_DIM, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> [B, 2048] pool features."""
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)  # [B, 192, 35, 35]
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean((2, 3))  # [B, 2048]


@dataclass(frozen=True)
class InceptionWeights:
    """Where the weights came from: ``official`` when their SHA-256 starts as the published
    file's does (scores comparable with papers), else a user's own file."""

    path: Path
    sha256: str

    @property
    def official(self) -> bool:
        return self.sha256.startswith(WEIGHTS_SHA256_PREFIX)


def _where_to_put_it() -> str:
    return (
        f"download {WEIGHTS_URL} and pass --feature-weights FILE, or put it at "
        f"{cache_dir() / 'inception' / WEIGHTS_NAME} (the cache is $PUSHFORWARD_CACHE)"
    )


def find_weights(path: str | None) -> InceptionWeights:
    """--feature-weights FILE, else the cached published file, else a checked download into the
    cache (never when PUSHFORWARD_OFFLINE is set)."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise PushforwardError(f"--feature-weights {path}: no such file; check the path")
        return InceptionWeights(p, sha256_of(p))
    target = cache_dir() / "inception" / WEIGHTS_NAME
    if target.is_file():
        got = sha256_of(target)
        if not got.startswith(WEIGHTS_SHA256_PREFIX):
            raise PushforwardError(
                f"{target}: SHA-256 {got[:12]}... is not the published weights' "
                f"({WEIGHTS_SHA256_PREFIX}...): a corrupt or wrong file; delete it and "
                + _where_to_put_it()
            )
        return InceptionWeights(target, got)
    if os.environ.get("PUSHFORWARD_OFFLINE"):
        raise PushforwardError(
            "Inception weights not found and PUSHFORWARD_OFFLINE is set; " + _where_to_put_it()
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PushforwardError(
            f"cannot create {target.parent} ({e.strerror}); set PUSHFORWARD_CACHE"
        ) from None
    errors = fetch_verified([WEIGHTS_URL], target, WEIGHTS_SHA256_PREFIX, timeout=60)
    if errors:
        raise PushforwardError(
            f"Inception weights not found and the download failed ({'; '.join(errors)}); "
            + _where_to_put_it()
        )
    return InceptionWeights(target, sha256_of(target))


def load_inception(weights: InceptionWeights) -> FIDInception:
    """The network with ``weights`` loaded; a file with other names or shapes is one line."""
    fix = f"pass the published {WEIGHTS_NAME} (or a state dict with its names and shapes)"
    sd = read_state_dict(weights.path, "--feature-weights", fix)
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    net = FIDInception()
    want = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing, extra = sorted(want.keys() - sd.keys()), sorted(sd.keys() - want.keys())
    wrong = [k for k in want.keys() & sd.keys() if sd[k].shape != want[k].shape]
    if missing or extra or wrong:
        what = (missing and f"missing {missing[0]}") or (extra and f"unexpected {extra[0]}")
        what = what or f"{wrong[0]} has shape {tuple(sd[wrong[0]].shape)}"
        raise PushforwardError(
            f"--feature-weights {weights.path}: not InceptionV3 FID weights ({what}, "
            f"{len(missing)} missing, {len(extra)} unexpected, {len(wrong)} of the wrong shape); "
            + fix
        )
    net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    return net.eval()


@torch.no_grad()
def pool_features(net: FIDInception, images: Examples, batch: int = 50) -> torch.Tensor:
    """[N, 1 or 3, H, W] in [0, 1] -> [N, 2048] float32; grey images are repeated to RGB, as
    PIL's convert("RGB") does for the reference implementation."""
    if len(images.shape) != 4 or images.shape[1] not in (1, 3):
        raise PushforwardError(
            f"Inception features need images of 1 or 3 channels, got shape {tuple(images.shape)}"
        )
    device = next(net.parameters()).device
    out = []
    for chunk in chunks(images, batch):
        x = chunk.to(device, torch.float32)
        out.append(net(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).cpu())
    return torch.cat(out) if out else torch.empty(0, POOL_DIM)
