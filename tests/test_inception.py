"""Inception FID and KID: the network against pytorch-fid's, the statistics against their
formulas, the weights file offline, and `compare` / `eval --features inception` end to end."""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import types
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from pushforward.errors import PushforwardError
from pushforward.metrics.inception import FIDInception, find_weights, load_inception, pool_features
from pushforward.metrics.pth import read_state_dict
from pushforward.metrics.scores import FeatureStats, frechet_from_stats, kid

from .conftest import PicklePayload, assert_user_error


def _random_weights() -> dict[str, torch.Tensor]:
    """Random convolutions with batch-norm statistics set from random images: without them
    every feature is the same for every image."""
    torch.manual_seed(0)
    net = FIDInception()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the batches seen
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 48, 48))
    return net.eval().state_dict()


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict with the published file's names and shapes, random values, torch.save'd."""
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(_random_weights(), path)
    return path


def pytorch_fid():  # type: ignore[no-untyped-def]
    """pytorch-fid's modules (a test-only dependency); required where CI installs it."""
    if os.environ.get("PUSHFORWARD_PYTORCH_FID") != "required":
        pytest.importorskip("pytorch_fid")
    # the torchvision wheels here are built for CUDA torch and fail at import beside the CPU
    # wheel in this one module, which registers meta kernels of detection ops pytorch-fid never
    # uses
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("stub"))
    import pytorch_fid.fid_score as fid_score
    import pytorch_fid.inception as inception

    return inception, fid_score


def _colour_folder(folder: Path, n: int, seed: int, stripes: bool) -> Path:
    """n 24 x 24 colour images: smooth gradients, or gradients with stripes (another
    distribution)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:24, 0:24] / 23.0
    for i in range(n):
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        t = (xx * rng.uniform(0.2, 1) + yy * rng.uniform(0.2, 1))[..., None] / 2
        img = c0 * (1 - t) + c1 * t
        if stripes:
            img = img * (0.5 + 0.5 * (np.sin(xx * rng.uniform(10, 20))[..., None] > 0))
        Image.fromarray((img * 255).round().astype(np.uint8), "RGB").save(folder / f"{i:03d}.png")
    return folder


def test_architecture_matches_pytorch_fid(weights_file: Path) -> None:
    inception, _ = pytorch_fid()
    sd = read_state_dict(weights_file, "weights", "")
    inception.load_state_dict_from_url = lambda *a, **k: sd  # no download: the same weights
    ref = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    ours = load_inception(find_weights(str(weights_file)))
    x = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(x)[0].flatten(1)
    got = pool_features(ours, x)
    assert got.shape == (3, 2048)
    assert got.std(0).mean() > 0.05  # features that differ between images: a real comparison
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_weight_files_load_in_both_layouts_and_others_are_one_line(
    tmp_path: Path, weights_file: Path
) -> None:
    sd = read_state_dict(weights_file, "weights", "")
    assert len(sd) == len(FIDInception().state_dict())
    legacy = tmp_path / "legacy.pth"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    back = read_state_dict(legacy, "weights", "")
    assert all(torch.equal(back[k], sd[k]) and back[k].dtype == sd[k].dtype for k in sd)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(PushforwardError, match="not InceptionV3 FID weights") as e:
        load_inception(find_weights(str(wrong)))
    assert "\n" not in str(e.value) and str(wrong) in str(e.value)
    shaped = dict(sd, **{"fc.weight": torch.zeros(10, 2048)})
    torch.save(shaped, wrong)
    with pytest.raises(PushforwardError, match=r"fc.weight has shape \(10, 2048\)"):
        load_inception(find_weights(str(wrong)))


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_pickle_that_runs_code_is_refused_and_never_run(tmp_path: Path, layout: str) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    torch.save(
        {"x": torch.zeros(2)}, evil, _use_new_zipfile_serialization=layout == "zip"
    )  # a valid file, then its object pickle swapped for one that calls open()
    payload = pickle.dumps({"x": PicklePayload(str(marker))}, protocol=2)
    if layout == "legacy":
        evil.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C) + pickle.dumps(1001) + payload)
    else:
        import zipfile

        with zipfile.ZipFile(evil, "w") as z:
            z.writestr("evil/data.pkl", payload)
    with pytest.raises(PushforwardError, match="not a plain state dict"):
        read_state_dict(evil, "--feature-weights", "fix")
    assert not marker.exists()


def test_frechet_distance_against_a_float64_transcription() -> None:
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(16, 16, generator=g, dtype=torch.float64)
    a = torch.randn(500, 16, generator=g, dtype=torch.float64) @ mix
    b = 0.5 + torch.randn(400, 16, generator=g, dtype=torch.float64) * 1.3
    an, bn = a.numpy(), b.numpy()
    s_a, s_b = np.cov(an, rowvar=False), np.cov(bn, rowvar=False)
    cross = scipy.linalg.sqrtm(s_a @ s_b).real
    want = ((an.mean(0) - bn.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * cross)
    got = frechet_from_stats(*FeatureStats.of(a).mean_cov(), *FeatureStats.of(b).mean_cov())
    assert got == pytest.approx(want, rel=1e-9)
    assert want > 10  # a real difference, not two near-zero numbers


def test_fid_does_not_depend_on_the_feature_batch_size() -> None:
    g = torch.Generator().manual_seed(1)
    a = 3 + torch.rand(300, 64, generator=g)  # float32 features with a large mean
    b = 3 + torch.rand(300, 64, generator=g) ** 2
    scores = []
    for batch in (1, 7, 100):
        stats = [FeatureStats.of(x, batch).mean_cov() for x in (a, b)]
        scores.append(frechet_from_stats(*stats[0], *stats[1]))
    assert scores[0] > 0.1
    assert max(scores) - min(scores) <= 1e-6 * scores[0], scores


def test_network_features_do_not_depend_on_the_batch_size(weights_file: Path) -> None:
    net = load_inception(find_weights(str(weights_file)))
    x = torch.rand(4, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    one, four = pool_features(net, x, batch=1), pool_features(net, x, batch=4)
    torch.testing.assert_close(one, four, rtol=1e-4, atol=1e-5)


def test_kid_against_its_formula() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 8, generator=g), 0.3 + torch.randn(40, 8, generator=g)
    got, spread = kid(x, y, subsets=1, subset_size=100)  # one subset: all of both sets
    k = lambda u, v: (float(u @ v) / 8 + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert got == pytest.approx(xx + yy - 2 * xy, rel=1e-6)
    assert spread == 0.0
    same, _ = kid(x, x[torch.randperm(40, generator=g)], subsets=20, subset_size=30)
    shifted, shifted_std = kid(x, x + 1, subsets=20, subset_size=30)
    assert abs(same) < 0.1 * shifted and shifted_std > 0


def test_square_root_of_singular_covariances_is_real_and_exact() -> None:
    # N(0, diag(1, 1, 0, 0)) against N(0, diag(4, 4, 0, 0)): FID = 2 (sqrt 4 - sqrt 1)^2 = 2
    mu = torch.zeros(4, dtype=torch.float64)
    s1, s2 = torch.diag(torch.tensor([1.0, 1, 0, 0])), torch.diag(torch.tensor([4.0, 4, 0, 0]))
    assert frechet_from_stats(mu, s1, mu, s2) == pytest.approx(2.0, abs=1e-12)
    # features of rank 3 in 32-d from 12 samples: a near-singular covariance
    g = torch.Generator().manual_seed(4)
    f = torch.randn(12, 3, generator=g) @ torch.randn(3, 32, generator=g)
    stats = FeatureStats.of(f).mean_cov()
    same = frechet_from_stats(*stats, *stats)
    # the square roots of eigenvalues at rounding level (1e-13) add up to 1e-6 of the trace
    assert math.isfinite(same) and abs(same) < 1e-6 * float(stats[1].trace())


def test_too_few_images_is_a_clear_error() -> None:
    with pytest.raises(PushforwardError, match="at least 10"):
        FeatureStats.of(torch.rand(5, 8)).mean_cov("images:few")


def test_offline_without_weights_is_one_line_and_fetches_nothing(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    a = _colour_folder(tmp_path / "a", 12, 0, False)
    line = assert_user_error(
        cli("compare", f"images:{a}", f"images:{a}"), "PUSHFORWARD_OFFLINE", "--feature-weights"
    )
    assert "pt_inception-2015-12-05-6726825d.pth" in line
    assert_user_error(
        cli("compare", f"images:{a}", f"images:{a}", "--feature-weights", tmp_path / "none.pth"),
        "--feature-weights",
        "no such file",
    )
    cached = Path(os.environ["PUSHFORWARD_CACHE"]) / "inception"
    cached.mkdir(parents=True, exist_ok=True)
    (cached / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"truncated download")
    try:
        assert_user_error(cli("compare", f"images:{a}", f"images:{a}"), "corrupt", "delete it")
    finally:
        (cached / "pt_inception-2015-12-05-6726825d.pth").unlink()


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # pytorch-fid
def test_compare_gives_pytorch_fids_fid(tmp_path: Path, cli, weights_file: Path) -> None:
    """pytorch-fid's own statistics of the two folders (its image loading, its network with the
    same weights) give compare's FID. With 12 images the covariances have rank 11 and
    pytorch-fid's scipy sqrtm fails on them ("Imaginary component"), so its formula is checked
    on full-rank statistics, where it works, and compare's square root on these."""
    inception, fid_score = pytorch_fid()
    sd = read_state_dict(weights_file, "weights", "")
    inception.load_state_dict_from_url = lambda *a, **k: sd
    model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    a = _colour_folder(tmp_path / "a", 12, 0, stripes=False)
    b = _colour_folder(tmp_path / "b", 12, 1, stripes=True)
    a2 = _colour_folder(tmp_path / "a2", 12, 2, stripes=False)
    theirs = [
        [
            torch.from_numpy(t)
            for t in fid_score.compute_statistics_of_path(str(f), model, 50, 2048, "cpu", 0)
        ]
        for f in (a, b)
    ]
    want = frechet_from_stats(*theirs[0], *theirs[1])
    g = torch.Generator().manual_seed(5)
    full = [torch.randn(300, 16, generator=g, dtype=torch.float64) * (1 + i) for i in range(2)]
    stats = [[t.numpy() for t in FeatureStats.of(f).mean_cov()] for f in full]
    assert fid_score.calculate_frechet_distance(*stats[0], *stats[1]) == pytest.approx(
        frechet_from_stats(
            *FeatureStats.of(full[0]).mean_cov(), *FeatureStats.of(full[1]).mean_cov()
        ),
        rel=1e-8,
    )
    code, out, err = cli(
        "compare", f"images:{a}", f"images:{b}", "--feature-weights", weights_file, "--json"
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["fid"] == pytest.approx(want, rel=1e-4) and want > 0
    assert res["n_a"] == res["n_b"] == 12 and res["feature_weights_official"] is False
    assert "not comparable with papers" in err and "biased upward" in err
    assert set(res) >= {"kid", "kid_std", "precision", "recall", "density", "coverage"}
    # the same distribution scores far closer than another one
    code, out, _ = cli(
        "compare", f"images:{a}", f"images:{a2}", "--feature-weights", weights_file, "--json"
    )
    near = json.loads(out)
    assert near["fid"] < 0.7 * res["fid"] and near["kid"] < res["kid"]
    # the reference features were cached by content, with what made them
    metas = list((Path(os.environ["PUSHFORWARD_CACHE"]) / "inception-features").glob("*.json"))
    assert metas and all(json.loads(m.read_text())["n"] == 12 for m in metas)
    assert {"network", "weights_sha256", "preprocessing"} <= set(json.loads(metas[0].read_text()))


def test_eval_features_inception_on_a_colour_images_run(
    tmp_path: Path, cli, weights_file: Path
) -> None:
    train = _colour_folder(tmp_path / "train", 40, 3, stripes=False)
    test = _colour_folder(tmp_path / "test", 12, 4, stripes=False)
    run = tmp_path / "run"
    code, _, err = cli(
        "train", "gan", "--data", f"images:{train}", "--test-data", f"images:{test}",
        "--steps", "5", "--batch-size", "16", "--out", run,
    )  # fmt: skip
    assert code == 0, err
    args = ["eval", run, "--metrics", "features", "--features", "inception", "--n-fake", "12"]
    code, out, err = cli(*args, "--feature-weights", weights_file)
    assert code == 0, err
    res = json.loads((run / "eval.json").read_text())
    assert res["features"] == "inception" and res["feature_n"] == 12
    assert res["fid"] > 0 and math.isfinite(res["kid"]) and 0 <= res["coverage"] <= 1
    assert "fid" in out
    # the reference split's features were cached, named by the data and split
    metas = (Path(os.environ["PUSHFORWARD_CACHE"]) / "inception-features").glob("*.json")
    assert any(json.loads(m.read_text())["data"] == f"images:{train}:test" for m in metas)
    # the classifier stays the default, and a grey-image set's feature metric needs labels
    assert_user_error(cli("eval", run, "--metrics", "features"), "labelled")
