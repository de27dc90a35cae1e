"""Snapshots of training and the explorer page: what a frame holds is the model at that step
applied to the fixed inputs; their size is bounded; bad folders and options are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pushforward
from pushforward.config import TrainConfig
from pushforward.models import GAN, GMM, VAE
from pushforward.recipes import resolve_options
from pushforward.training.frames import BYTES_LIMIT, SNAPSHOTS, read_snapshots
from pushforward.training.prepare import build_model, prepare_data

from .conftest import assert_user_error


def _initial(model: str, **options: object) -> torch.nn.Module:
    """The model a run with these options starts from, built as training builds it."""
    cls = {"gan": GAN, "vae": VAE, "gmm": GMM}[model]
    tcfg, mcfg = resolve_options(model, (TrainConfig, cls.Config), dict(options), None, [])
    prep = prepare_data(cls, model, tcfg, mcfg)
    torch.manual_seed(prep.tcfg.seed)
    return build_model(cls, model, prep.mcfg, prep.data, torch.device("cpu")).eval()


def test_gan_frames_are_g_and_d_at_that_step(tmp_path: Path) -> None:
    opts = {"data": "ring8", "steps": 60, "hidden": 32, "snapshots": 6, "seed": 3}
    run = pushforward.train("gan", out="g", progress=False, **opts)
    info, inputs, frames = read_snapshots(run.path)
    assert [f["step"] for f in frames] == [0, 2, 10, 22, 38, 60]  # denser early, both ends
    assert info["kind"] == "points" and info["critic"] == "probability"
    z = inputs["z_lines"].reshape(-1, 16)  # [2 * 17 * 48, 16]: lines of the z-plane
    assert torch.equal(z[:, 2:], torch.zeros_like(z[:, 2:]))
    start = _initial("gan", **opts)
    with torch.no_grad():
        # frame 0 is G at its initialisation applied to the grid; the last, the trained G
        assert torch.allclose(frames[0]["lines"].reshape(-1, 2), start.generate(z), atol=1e-5)
        end = run.model.eval()
        net = end.generator_ema
        assert torch.allclose(frames[-1]["lines"].reshape(-1, 2), end.generate(z, net), atol=1e-5)
        assert not torch.allclose(frames[0]["lines"], frames[-1]["lines"], atol=1e-2)
        # D's map: its logits at the cell centres of the data range, the first row at the top
        x0, x1, y0, y1 = info["extent"]
        corner = torch.tensor([[x0 + (x1 - x0) / 128, y1 - (y1 - y0) / 128]])
        assert torch.allclose(frames[-1]["critic"][0, 0], end.discriminate(corner)[0], atol=1e-5)
    # training saw none of it: the weights are those of a run without snapshots
    plain = pushforward.train("gan", out="p", progress=False, **{**opts, "snapshots": 0})
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, run.model.state_dict()[k]), k
    assert not (plain.path / SNAPSHOTS).exists()


def test_gmm_frames_are_its_parameters_at_each_em_iteration(tmp_path: Path) -> None:
    opts = {"data": "grid25", "components": 10, "covariance": "diag", "seed": 1}
    run = pushforward.train("gmm", out="m", progress=False, **opts)
    _, _, frames = read_snapshots(run.path)
    # the same EM from the same start, its parameters recorded at every iteration
    gmm = _initial("gmm", **opts)
    data = pushforward.data.load_dataset("grid25").train
    seen: dict[int, tuple[torch.Tensor, ...]] = {}

    def record(it: int, _ll: float) -> bool:
        seen[it] = (gmm.weights.float(), gmm.means.float(), gmm.covariances.float())
        return False

    iterations = gmm.fit(data, 100, torch.Generator().manual_seed(1), record)["iterations"]
    assert frames[0]["step"] == 0 and frames[-1]["step"] == iterations >= 5
    for f in frames:
        w, mu, var = seen[f["step"]]
        assert torch.allclose(f["weights"], w) and torch.allclose(f["means"], mu)
        assert torch.allclose(f["covariances"], torch.diag_embed(var))
    # EM moved the components: the start (k-means) and the end differ
    assert not torch.allclose(frames[0]["means"], frames[-1]["means"], atol=1e-4)


def test_vae_frames_show_the_latent_plane_and_its_holes(tmp_path: Path) -> None:
    run = pushforward.train(
        "vae", data="digits", latent_dim=2, steps=400, out="v", progress=False, snapshots=4
    )
    info, inputs, frames = read_snapshots(run.path)
    last = frames[-1]
    assert info["latent_side"] == 16 and last["latent_images"].shape == (256, 1, 8, 8)
    assert last["samples"].dtype == torch.uint8 and inputs["real"].shape == (64, 1, 8, 8)
    # the encoder means of the fixed held-out images, under the trained encoder
    mu, _ = run.model.encode(run.data.test[: len(last["enc_mu"])])
    assert torch.allclose(last["enc_mu"], mu, atol=1e-5)
    # a trained encoder spreads the codes: the prior's mass it leaves empty shows as holes
    assert last["enc_mu"].std(0).min() > 4 * frames[0]["enc_mu"].std(0).max()
    assert last["holes"].sum() > 0 and last["holes"].sum() < 64 * 64 / 2


@pytest.mark.parametrize(
    ("model", "options"),
    [("vae", {"data": "ring8", "hidden": 32}), ("vae", {"data": "digits", "latent_dim": 2})],
)
def test_snapshots_stay_within_their_size_bound(model: str, options: dict, tmp_path: Path) -> None:
    run = pushforward.train(model, out="r", progress=False, steps=250, snapshots=200, **options)
    files = list((run.path / SNAPSHOTS).glob("*.safetensors"))
    frames = [f for f in files if f.name.startswith("step-")]
    assert 10 < len(frames) < 200  # fewer than asked: the bound took over
    assert sum(f.stat().st_size for f in files) <= BYTES_LIMIT + (256 << 10)


def test_explore_writes_a_self_contained_page_and_a_gif(cli, tmp_path: Path) -> None:
    args = ("train", "gmm", "--data", "ring8", "--components", "8", "--out", "m")
    assert cli(*args)[0] == 0
    code, out, err = cli("explore", "m", "--gif", "m.gif")
    assert code == 0, err
    page = (tmp_path / "m" / "explore.html").read_text()
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    data = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    frames = read_snapshots(tmp_path / "m")[2]
    assert data["model"] == "gmm" and len(data["frames"]) == len(frames) >= 2
    assert data["frames"][-1]["means"]["s"] == [8, 2]
    gif = (tmp_path / "m.gif").read_bytes()
    assert gif[:6] == b"GIF89a" and gif.count(b"\x21\xf9\x04") == len(frames)  # one per frame
    assert "m.gif" in out


def test_explore_refuses_bad_folders_and_options(cli, tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "three.npy", np.random.default_rng(0).normal(size=(500, 3)))
    three = ("train", "gan", "--data", "npy:three.npy", "--steps", "5", "--out", "t")
    assert_user_error(cli(*three, "--snapshots", "5"), "--snapshots 5", "--snapshots 0")
    assert not (tmp_path / "t").exists()  # refused before the folder was claimed
    assert cli(*three)[0] == 0  # by default such data takes none
    assert_user_error(cli("explore", "t"), "snapshots", "--snapshots N")
    assert_user_error(cli("explore", "nowhere"), "nowhere")
    one = ("train", "vae", "--data", "moons", "--latent-dim", "1", "--steps", "5")
    assert_user_error(cli(*one, "--snapshots", "3", "--out", "o"), "--latent-dim is 1")
    assert cli(*one, "--out", "o")[0] == 0  # none by default
    args = ("train", "gan", "--data", "ring8", "--steps", "20", "--hidden", "16", "--out", "g")
    assert cli(*args)[0] == 0
    assert_user_error(cli("explore", "g", "--out", "page.txt"), "FILE.html")
    assert_user_error(cli("explore", "g", "--gif", "a.png"), "FILE.gif")
    assert not (tmp_path / "g" / "explore.html").exists()  # checked before anything is written
    frame = sorted((tmp_path / "g" / SNAPSHOTS).glob("step-*"))[-1]
    frame.write_bytes(frame.read_bytes()[:-40])  # torn
    assert_user_error(cli("explore", "g"), frame.name)
    frame.unlink()
    # a well-formed file holding tensors this version never writes
    from safetensors.torch import save_file

    save_file({"lines": torch.zeros(3, 3)}, str(frame))
    assert_user_error(cli("explore", "g"), frame.name, "lines")
