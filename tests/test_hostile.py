"""Hostile and absurd inputs: each gets exit status 2 and one `error:` line naming what to fix,
with no traceback, nothing partly written, and nothing written earlier damaged
(docs/reliability.md lists the guarantees)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from .conftest import assert_user_error


@pytest.fixture
def gan_run(cli, tmp_path: Path) -> Path:
    code, _, err = cli("train", "gan", "--data", "ring8", "--steps", "20", "--out", "g")
    assert code == 0, err
    return tmp_path / "g"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["vae", "--data", "ring8", "--latent-dim", "100000000"], ["parameters", "--latent-dim"]),
        (["gan", "--data", "ring8", "--hidden", "10000000", "--depth", "3"], ["--hidden"]),
        (["gmm", "--data", "digits", "--components", "10000000"], ["--components", "GiB"]),
    ],
)
def test_a_model_too_big_for_memory_is_refused_before_the_folder(
    cli, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    """Counted before anything is allocated: no failed allocation's traceback, no OOM kill,
    and no half-made run folder to block the corrected command."""
    assert_user_error(cli("train", *args, "--out", "big", "--steps", "2"), *needles)
    assert not (tmp_path / "big").exists()


def test_sample_sizes_are_bounded(cli, gan_run: Path, tmp_path: Path) -> None:
    before = _tree(gan_run)
    assert_user_error(cli("sample", str(gan_run), "-n", "1000000000000", "--out", "x.npy"), "-n")
    assert not (tmp_path / "x.npy").exists()
    assert_user_error(cli("sample", str(gan_run), "--out", "x.txt"), "x.txt", "FILE.npy")
    assert _tree(gan_run) == before
    # a picture draws no more than it shows, and says so
    code, out, err = cli("sample", str(gan_run), "-n", "300000", "--out", "p.png")
    assert code == 0 and "100,000 of the 300,000 samples" in out, (out, err)
    # more samples than one chunk are drawn in chunks: all of them, finite
    code, _, err = cli("sample", str(gan_run), "-n", "70000", "--out", "many.npy")
    assert code == 0, err
    import numpy as np

    many = np.load(tmp_path / "many.npy", allow_pickle=False)
    assert many.shape == (70000, 2) and np.isfinite(many).all()
    assert len(np.unique(many[:, 0])) > 69000  # no chunk repeats another


def test_expost_components_are_bounded(cli, tmp_path: Path) -> None:
    code, _, err = cli("train", "vae", "--data", "ring8", "--steps", "20", "--out", "v")
    assert code == 0, err
    assert_user_error(
        cli("sample", "v", "--sampler", "gmm", "--components", "100000"), "--components", "20,000"
    )
    assert not list((tmp_path / "v").glob("expost-gmm-*"))


def test_iwae_memory_does_not_grow_with_k() -> None:
    """The running log-sum-exp gives the bound of one log-sum-exp over all k weights."""
    from pushforward.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    vae = VAE(VAEConfig(latent_dim=2, likelihood="gaussian", hidden=16), (2,))
    x = torch.randn(5, 2)
    bound = vae.iwae_bound(x, 300, torch.Generator().manual_seed(1), max_rows=50)  # 30 chunks
    # the same 300 draws of z, all weights kept, one log-sum-exp
    g, (mu, logvar) = torch.Generator().manual_seed(1), vae.encode(x)
    with torch.no_grad():
        terms = [
            vae._log_terms(x, mu, logvar, torch.randn((10, 5, 2), generator=g)) for _ in range(30)
        ]
    log_w = torch.cat([(px + pz - q).double() for px, pz, q in terms])  # [300, 5]
    whole = torch.logsumexp(log_w, 0) - math.log(300)
    assert torch.allclose(bound, whole, atol=1e-9, rtol=0) and torch.isfinite(bound).all()
