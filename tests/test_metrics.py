import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from stbench.metrics import MetricContext
from stbench.metrics.pixel import MAE, MSE, PSNR, RMSE, SSIM, ssim_frames


def _pair(shape=(2, 3, 1, 20, 24), seed=0):
    rng = np.random.default_rng(seed)
    true = rng.random(shape)
    pred = np.clip(true + 0.15 * rng.standard_normal(shape), -0.2, 1.2)  # some values out of range
    return torch.from_numpy(pred), torch.from_numpy(true)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_ssim_equals_skimage_per_frame(channels, data_range):
    pred, true = _pair((2, 3, channels, 20, 24), seed=channels)
    pred = pred.clamp(0, 1)
    ours = ssim_frames(pred, true, data_range)
    for b in range(2):
        for t in range(3):
            ref = structural_similarity(pred[b, t].numpy(), true[b, t].numpy(), data_range=data_range,
                                        channel_axis=0)
            assert abs(ours[b, t].item() - ref) < 1e-4


def test_ssim_metric_clips_and_honours_openstl_range():
    pred, true = _pair()
    context = MetricContext(value_range=(0.0, 1.0), data_range=1.0)
    metric = SSIM("ssim", context)
    metric.update(pred, true)
    clipped = pred.clamp(0, 1)
    expected = np.mean([structural_similarity(clipped[b, t, 0].numpy(), true[b, t, 0].numpy(), data_range=1.0)
                        for b in range(2) for t in range(3)])
    assert metric.compute()["ssim"] == pytest.approx(expected, abs=1e-4)
    openstl = SSIM("ssim", MetricContext(options={"ssim_data_range": 2.0}))
    openstl.update(pred, true)
    assert openstl.compute()["ssim"] > metric.compute()["ssim"]  # a wider range inflates SSIM


def test_ssim_reports_the_openstl_convention_beside_its_own():
    """'ssim_openstl' is what scikit-image <= 0.19 gave OpenSTL's [0, 1] frames: data_range 2.0; for data in
    0..255 it is the same number as for those frames scaled to [0, 1]."""
    pred, true = _pair()
    metric = SSIM("ssim", MetricContext(value_range=(0.0, 1.0), data_range=1.0))
    metric.update(pred[:1], true[:1])
    metric.update(pred[1:], true[1:])
    clipped = pred.clamp(0, 1)
    frames = [[structural_similarity(clipped[b, t, 0].numpy(), true[b, t, 0].numpy(), data_range=2.0)
               for t in range(3)] for b in range(2)]
    values = metric.compute()
    assert set(values) == {"ssim", "ssim_openstl"}
    assert values["ssim_openstl"] == pytest.approx(np.mean(frames), abs=1e-4)
    assert values["ssim_openstl"] > values["ssim"]
    assert metric.per_frame()["ssim_openstl"] == pytest.approx(np.mean(frames, axis=0), abs=1e-4)
    assert metric.per_clip()["ssim_openstl"] == pytest.approx(np.mean(frames, axis=1), abs=1e-4)
    assert len(metric.per_clip()["ssim"]) == 2
    scaled = SSIM("ssim", MetricContext(value_range=(0.0, 255.0), data_range=255.0,
                                        options={"ssim_data_range": 1.0}))  # the option moves 'ssim' only
    scaled.update(pred * 255, true * 255)
    assert scaled.compute()["ssim_openstl"] == pytest.approx(values["ssim_openstl"], abs=1e-5)


def test_mse_mae_sum_over_pixels_average_over_clips_and_frames():
    pred, true = _pair()
    context = MetricContext()
    mse, mae, rmse = MSE("mse", context), MAE("mae", context), RMSE("rmse", context)
    for metric in (mse, mae, rmse):
        metric.update(pred[:1], true[:1])  # streaming in two batches
        metric.update(pred[1:], true[1:])
    diff = (pred - true).numpy()
    assert mse.compute()["mse"] == pytest.approx((diff ** 2).sum(axis=(2, 3, 4)).mean())
    assert mae.compute()["mae"] == pytest.approx(np.abs(diff).sum(axis=(2, 3, 4)).mean())
    assert rmse.compute()["rmse"] == pytest.approx(np.sqrt((diff ** 2).sum(axis=(2, 3, 4)).mean()))
    per_frame = mse.per_frame()["mse"]
    assert per_frame == pytest.approx((diff ** 2).sum(axis=(2, 3, 4)).mean(axis=0).tolist())


def test_spatial_norm_is_a_per_pixel_mean():
    pred, true = _pair()
    metric = MSE("mse", MetricContext(spatial_norm=True, value_range=None))
    metric.update(pred, true)
    assert metric.compute()["mse"] == pytest.approx(((pred - true) ** 2).mean().item())


def test_psnr_per_frame_on_clipped_predictions():
    pred, true = _pair()
    metric = PSNR("psnr", MetricContext())
    metric.update(pred, true)
    clipped = pred.clamp(0, 1).numpy()
    ref = [20 * np.log10(1 / np.sqrt(((clipped[b, t] - true[b, t].numpy()) ** 2).mean()))
           for b in range(2) for t in range(3)]
    assert metric.compute()["psnr"] == pytest.approx(np.mean(ref))


def test_shape_mismatch_is_reported():
    metric = MSE("mse", MetricContext())
    with pytest.raises(ValueError, match="must both be"):
        metric.update(torch.zeros(1, 2, 1, 8, 8), torch.zeros(1, 3, 1, 8, 8))


@pytest.mark.parametrize("missing", ["reset", "update", "compute"])
def test_a_metric_missing_a_required_method_fails_when_constructed(missing):
    from stbench import FrameMetric, Metric

    methods = {name: (lambda self, *args: {}) for name in ("reset", "update", "compute") if name != missing}
    with pytest.raises(TypeError, match=f"abstract class Partial .*{missing}"):
        type("Partial", (Metric,), methods)()
    with pytest.raises(TypeError, match="abstract class NoFrames .*frame_values"):
        type("NoFrames", (FrameMetric,), {})("m", MetricContext())


def test_ssim_float32_large_values_and_chunk_edges_equal_skimage():
    """The kernel works in float32 on mean-shifted frames: values around 280 (Kelvin) with small variations,
    float32 inputs as evaluation hands them over, frame counts that leave a short last chunk, a 5x5 window."""
    rng = np.random.default_rng(3)
    true = 280 + 3 * rng.random((3, 7, 2, 16, 21))
    pred = true + 0.3 * rng.standard_normal(true.shape)
    for win_size, chunk in ((7, None), (7, 5), (5, 4)):
        ours = ssim_frames(torch.from_numpy(pred).float(), torch.from_numpy(true).float(), 10.0, win_size=win_size,
                           chunk=chunk)
        p32, t32 = pred.astype(np.float32).astype(np.float64), true.astype(np.float32).astype(np.float64)
        ref = [[structural_similarity(p32[b, t], t32[b, t], data_range=10.0, channel_axis=0, win_size=win_size)
                for t in range(7)] for b in range(3)]
        assert np.abs(ours.numpy() - np.asarray(ref)).max() < 1e-5


def test_ssim_kernel_setting_is_checked_and_a_failed_compile_falls_back(monkeypatch):
    from stbench.errors import UserError
    from stbench.metrics import pixel_scores

    monkeypatch.setenv("STBENCH_SSIM", "fused")
    with pytest.raises(UserError, match="STBENCH_SSIM='fused'.*eager, compiled"):
        pixel_scores.ssim_kernel()

    def no_compiler(*args, **kwargs):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\nmore lines")

    monkeypatch.setenv("STBENCH_SSIM", "compiled")
    monkeypatch.setattr(pixel_scores.torch, "compile", no_compiler)
    monkeypatch.setattr(pixel_scores, "_COMPILED", {})
    pred, true = _pair()
    metric = SSIM("ssim", MetricContext())
    metric.update(pred, true)
    eager = ssim_frames(pred.clamp(0, 1), true, 1.0, kernel="eager")
    assert metric.compute()["ssim"] == pytest.approx(float(eager.mean()), abs=1e-12)
    note = metric.provenance()
    assert note["kernel"] == "eager"
    assert note["note"].startswith("STBENCH_SSIM=compiled failed to compile (RuntimeError: InductorError")
    assert "more lines" not in note["note"]
    monkeypatch.delenv("STBENCH_SSIM")
    assert SSIM("ssim", MetricContext()).provenance() == {}  # the default kernel leaves records as they were


def test_float64_copies_are_shared_between_metrics_but_never_stale():
    pred, true = _pair()
    pred, true = pred.float(), true.float()
    before = pred.double()
    mse, mae = MSE("mse", MetricContext()), MAE("mae", MetricContext())
    mse.update(pred, true)
    mae.update(pred, true)  # the same tensors: the float64 copies made for mse are reused
    pred.add_(1.0)  # changed in place: copied again
    mse.update(pred, true)
    first = ((before - true.double()) ** 2).sum(dim=(2, 3, 4))
    second = ((pred.double() - true.double()) ** 2).sum(dim=(2, 3, 4))
    assert mse.compute()["mse"] == pytest.approx(float(torch.cat([first, second]).mean()), rel=1e-12)
    assert mae.compute()["mae"] == pytest.approx(float((before - true.double()).abs().sum(dim=(2, 3, 4)).mean()),
                                                 rel=1e-12)
