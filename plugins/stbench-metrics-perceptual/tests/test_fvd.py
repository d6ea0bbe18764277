"""FVD: the Frechet distance, streaming statistics, clip preparation, I3D and its two weight formats,
and "n/a" without weights."""
import numpy as np
import pytest
import torch
from torch import nn

from stbench import MetricContext, NotAvailable, UserError
from stbench_metrics_perceptual.fvd import FVD, GaussianStats, build_fvd, frechet_distance, to_i3d_clips
from stbench_metrics_perceptual.i3d import InceptionI3d, TorchScriptI3D

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # fakes of the stylegan-v file

CONTEXT = MetricContext(dataset="kth", task="kth-10-20", value_range=(0.0, 1.0))


@pytest.fixture(autouse=True)
def no_weights_around(monkeypatch, tmp_path):
    """Tests see only the weights they make: no env vars, empty torch hub, dnnlib and VideoGPT caches."""
    for name in ("STBENCH_FVD_I3D", "DNNLIB_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_frechet_distance_of_gaussians_with_commuting_covariances_is_the_closed_form():
    # diagonal covariances: |mu1 - mu2|^2 + sum (s1 - s2)^2 over the standard deviations
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.5])
    expected = ((mu1 - mu2) ** 2).sum() + ((sd1 - sd2) ** 2).sum()
    assert frechet_distance(mu1, np.diag(sd1 ** 2), mu2, np.diag(sd2 ** 2)) == pytest.approx(expected, rel=1e-12)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([2.0], [[9.0]], [-1.0], [[4.0]]) == pytest.approx(9.0 + 1.0)


def test_frechet_distance_of_general_gaussians_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    root = scipy_linalg.sqrtm(cov1 @ cov2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * root)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, cov1, mu1, cov1) == pytest.approx(0.0, abs=1e-9)


def test_streaming_statistics_equal_those_of_all_rows_at_once():
    rows = np.random.default_rng(1).normal(loc=5.0, size=(37, 4))
    stats = GaussianStats()
    for start, stop in ((0, 1), (1, 9), (9, 9), (9, 30), (30, 37)):
        stats.add(torch.from_numpy(rows[start:stop]))
    assert stats.count == 37
    assert np.allclose(stats.mean.numpy(), rows.mean(axis=0), atol=1e-12)
    assert np.allclose(stats.covariance().numpy(), np.cov(rows, rowvar=False), atol=1e-12)


def test_clips_are_scaled_resized_padded_with_their_last_frame_and_made_rgb():
    video = torch.rand(2, 4, 1, 16, 20) * 2.0  # values beyond the range are clipped
    clips = to_i3d_clips(video, (0.0, 2.0))
    assert clips.shape == (2, 3, 10, 224, 224)
    assert clips.min() >= -1 and clips.max() <= 1
    assert torch.equal(clips[:, :, 3], clips[:, :, 9]) and not torch.equal(clips[:, :, 2], clips[:, :, 3])
    assert torch.equal(clips[:, 0], clips[:, 2])
    assert to_i3d_clips(torch.rand(1, 12, 3, 8, 8), (0.0, 1.0)).shape == (1, 3, 12, 224, 224)


class PooledFeatures(nn.Module):
    """Test-only extractor: a fixed function of the clip, so FVD has something to compare."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool3d(x, (2, 2, 2)).flatten(1)


def test_fvd_streams_to_the_distance_of_all_features_and_is_zero_for_identical_sets():
    generator = torch.Generator().manual_seed(0)
    true = torch.rand(12, 6, 1, 16, 16, generator=generator)
    pred = (true + 0.3 * torch.rand(true.shape, generator=generator)).clamp(0, 1)
    metric = FVD("fvd", CONTEXT, PooledFeatures())
    for chunk in true.split(5):
        metric.update(chunk, chunk)
    assert metric.compute()["fvd"] == pytest.approx(0.0, abs=1e-9)
    metric.reset()
    metric.update(pred[:7], true[:7])
    metric.update(pred[7:], true[7:])
    real = PooledFeatures()(to_i3d_clips(true, (0, 1))).double()
    fake = PooledFeatures()(to_i3d_clips(pred, (0, 1))).double()
    expected = frechet_distance(real.mean(0), torch.cov(real.T), fake.mean(0), torch.cov(fake.T))
    assert metric.compute()["fvd"] == pytest.approx(expected, rel=1e-6) and expected > 0
    assert metric.per_frame() is None


def test_i3d_with_random_weights_gives_400_logits_per_clip():
    # test-only: random weights check the architecture's shapes, never a reported number
    torch.manual_seed(0)
    with torch.no_grad():
        logits = InceptionI3d()(torch.rand(1, 3, 10, 224, 224) * 2 - 1)
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()


def test_a_pytorch_i3d_state_dict_named_by_option_loads(tmp_path):
    torch.manual_seed(0)
    state = InceptionI3d().state_dict()
    for key in ("Conv3d_1a_7x7.conv3d.weight", "Conv3d_2c_3x3.bn.running_var", "Mixed_4f.b2b.conv3d.weight",
                "Mixed_5c.b3b.bn.bias", "logits.conv3d.weight", "logits.conv3d.bias"):
        assert key in state  # the key names of piergiaj/pytorch-i3d and VideoGPT's i3d_pretrained_400.pt
    old_style = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old_style, tmp_path / "i3d_pretrained_400.pt")
    metric = build_fvd(MetricContext(value_range=(0.0, 1.0), options={"fvd_i3d": str(tmp_path / "i3d_pretrained_400.pt")}))
    assert isinstance(metric, FVD) and isinstance(metric.extractor, InceptionI3d)
    loaded = metric.extractor.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in old_style.items())
    del old_style["Mixed_4b.b0.conv3d.weight"]
    torch.save(old_style, tmp_path / "broken.pt")
    with pytest.raises(UserError, match="Mixed_4b.b0.conv3d.weight"):
        build_fvd(MetricContext(value_range=(0.0, 1.0), options={"fvd_i3d": str(tmp_path / "broken.pt")}))


class FakeDetector(nn.Module):
    """Stands in for stylegan-v's i3d_torchscript.pt: same call signature, 400 outputs."""

    def forward(self, x: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
        assert not rescale and not resize and return_features
        pooled = torch.nn.functional.adaptive_avg_pool3d(x, (2, 2, 2)).flatten(1)
        return pooled.repeat(1, 17)[:, :400]


def test_a_torchscript_detector_from_the_environment_loads_and_scores(tmp_path, monkeypatch):
    torch.jit.save(torch.jit.script(FakeDetector()), str(tmp_path / "i3d_torchscript.pt"))
    monkeypatch.setenv("STBENCH_FVD_I3D", str(tmp_path / "i3d_torchscript.pt"))
    metric = build_fvd(CONTEXT)
    assert isinstance(metric.extractor, TorchScriptI3D)
    true = torch.rand(4, 3, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    metric.update(true, true)
    assert metric.compute()["fvd"] == pytest.approx(0.0, abs=1e-9)
    metric.reset()
    metric.update(1 - true, true)
    assert metric.compute()["fvd"] > 0


def test_the_torch_hub_cache_is_searched_but_torchscript_there_is_not_loaded(tmp_path):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.jit.save(torch.jit.script(FakeDetector()), str(hub / "i3d_torchscript.pt"))
    metric = build_fvd(CONTEXT)
    assert isinstance(metric.compute()["fvd"], NotAvailable)
    assert f"{hub / 'i3d_torchscript.pt'} (in the torch hub cache) is TorchScript" in metric.reason
    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), hub / "i3d_pretrained_400.pt")
    assert isinstance(build_fvd(CONTEXT).extractor, InceptionI3d)


def test_without_weights_fvd_is_unavailable_with_the_reason():
    metric = build_fvd(CONTEXT)
    assert "no I3D weights" in metric.reason and "fvd_i3d" in metric.reason
    metric.update(torch.rand(2, 10, 1, 8, 8), torch.rand(2, 10, 1, 8, 8))
    assert isinstance(metric.compute()["fvd"], NotAvailable) and metric.per_frame() is None
    with pytest.raises(UserError, match="not a file"):
        build_fvd(MetricContext(value_range=(0.0, 1.0), options={"fvd_i3d": "/no/such/i3d.pt"}))


def test_unscorable_data_reports_unavailable_not_a_number():
    assert "bounded" in build_fvd(MetricContext(value_range=None)).reason
    metric = FVD("fvd", CONTEXT, PooledFeatures())
    metric.update(torch.rand(2, 4, 2, 8, 8), torch.rand(2, 4, 2, 8, 8))
    assert "C=2" in metric.unavailable_reason and isinstance(metric.compute()["fvd"], NotAvailable)
    metric = FVD("fvd", CONTEXT, PooledFeatures())
    metric.update(torch.rand(1, 4, 1, 8, 8), torch.rand(1, 4, 1, 8, 8))
    assert isinstance(metric.compute()["fvd"], NotAvailable) and "at least 2 clips" in metric.unavailable_reason
