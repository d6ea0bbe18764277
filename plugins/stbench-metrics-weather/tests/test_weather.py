"""Weather and climate scores on examples small enough to work out by hand."""
import math

import numpy as np
import pytest
import torch

from stbench import MetricContext, UserError
from stbench_metrics_weather import METRICS, stbench_register_metrics
from stbench_metrics_weather.categorical import ContingencyScore
from stbench_metrics_weather.enso import ICAR_LATITUDES, ICAR_LONGITUDES, Nino34, lead_weights
from stbench_metrics_weather.gridded import ACC, WMAE, WRMSE, build_acc
from stbench_metrics_weather.options import latitudes

SEVIR = MetricContext(dataset="sevir", value_range=(0.0, 255.0))


def frames(*rows):
    """A [B=1, T, C=1, H, W] tensor from nested lists of frames."""
    return torch.tensor(rows, dtype=torch.float64).unsqueeze(0).unsqueeze(2)


def scores(name, pred, true, options=None, chunks=1):
    metric = ContingencyScore(name, MetricContext(options=options or {}))
    for p, t in zip(pred.chunk(chunks), true.chunk(chunks)):
        metric.update(p, t)
    return metric.compute(), metric.per_frame()


def test_every_metric_registers():
    registered = []
    stbench_register_metrics(register=registered.append)
    assert [spec.name for spec in registered] == ["csi", "pod", "sucr", "bias", "far", "hss", "ets", "wrmse", "wmae",
                                                  "acc", "nino34"]
    directions = {spec.name: spec.higher_is_better for spec in registered}
    assert directions["far"] is False and directions["hss"] is True and directions["ets"] is True
    assert registered == METRICS


def test_contingency_scores_by_hand():
    # frame 1: hits 1 (top-left), misses 1 (top-right), false alarms 1 (bottom-left)
    # frame 2: hits 2, nothing else
    true = frames([[1, 1], [0, 0]], [[1, 1], [0, 0]])
    pred = frames([[1, 0], [1, 0]], [[1, 1], [0, 0]])
    options = {"csi_thresholds": [0.5]}
    eps = 1e-4
    csi, csi_frames = scores("csi", pred, true, options)
    assert csi == pytest.approx({"csi_0.5": 3 / (3 + 1 + 1 + eps), "csi": 3 / (5 + eps)})
    assert csi_frames["csi"] == pytest.approx([1 / (3 + eps), 2 / (2 + eps)])
    assert scores("pod", pred, true, options)[0]["pod"] == pytest.approx(3 / (4 + eps))
    assert scores("sucr", pred, true, options)[0]["sucr"] == pytest.approx(3 / (4 + eps))
    assert scores("bias", pred, true, options)[0]["bias"] == pytest.approx(4 / (4 + eps))


def test_csi_averages_thresholds_counts_over_the_set_and_streams():
    rng = np.random.default_rng(0)
    true = torch.from_numpy(rng.uniform(0, 255, size=(6, 3, 1, 8, 8)))
    pred = (true + torch.from_numpy(rng.normal(0, 40, size=true.shape))).clamp(0, 255)
    whole, whole_frames = scores("csi", pred, true)
    streamed, streamed_frames = scores("csi", pred, true, chunks=3)
    assert list(whole) == [f"csi_{t}" for t in (16, 74, 133, 160, 181, 219)] + ["csi"]
    assert streamed == pytest.approx(whole) and streamed_frames["csi"] == pytest.approx(whole_frames["csi"])
    observed, forecast = (true >= 133).numpy(), (pred >= 133).numpy()
    hits, misses = (observed & forecast).sum(), (observed & ~forecast).sum()
    false_alarms = (~observed & forecast).sum()
    assert whole["csi_133"] == pytest.approx(hits / (hits + misses + false_alarms + 1e-4))
    assert whole["csi"] == pytest.approx(np.mean([whole[f"csi_{t}"] for t in (16, 74, 133, 160, 181, 219)]))


def test_nan_pixels_count_as_no_event():
    true = frames([[1, float("nan")], [0, 0]])
    pred = frames([[1, 1], [1, float("nan")]])
    result, _ = scores("csi", pred, true, {"csi_thresholds": "0.5"})
    assert result["csi"] == pytest.approx(1 / (2 + 1e-4))  # 1 hit, 1 false alarm; the NaN pixels ignored


def test_default_latitudes_are_the_equiangular_global_grid():
    lat = latitudes({}, 32)
    assert lat[0] == -87.1875 and lat[-1] == 87.1875 and torch.allclose(lat[1:] - lat[:-1], torch.tensor(5.625).double())
    with pytest.raises(UserError, match="3 values but the frames have 2 rows"):
        latitudes({"latitudes": [0, 1, 2]}, 2)


def test_weighted_rmse_and_mae_by_hand():
    # latitudes 0 and 60 degrees: cos = 1, 0.5 -> weights 4/3, 2/3; errors 1 (row 0) and 2 (row 1)
    context = MetricContext(options={"latitudes": [0.0, 60.0]}, spatial_norm=True)
    true = torch.zeros(1, 1, 1, 2, 3, dtype=torch.float64)
    pred = true.clone()
    pred[..., 0, :], pred[..., 1, :] = 1.0, -2.0
    rmse, mae = WRMSE("wrmse", context), WMAE("wmae", context)
    rmse.update(pred, true)
    mae.update(pred, true)
    assert rmse.compute()["wrmse"] == pytest.approx(math.sqrt((4 / 3 * 1 + 2 / 3 * 4) / 2))  # sqrt(2)
    assert mae.compute()["wmae"] == pytest.approx((4 / 3 * 1 + 2 / 3 * 2) / 2)  # 4/3


def test_weighted_rmse_is_a_mean_of_per_frame_roots():
    context = MetricContext(options={"latitudes": "0, 0"})
    true = torch.zeros(2, 2, 1, 2, 2, dtype=torch.float64)
    pred = true.clone()
    pred[0, 0], pred[1, 1] = 3.0, 4.0  # frame errors: clip 0 -> (3, 0), clip 1 -> (0, 4)
    metric = WRMSE("wrmse", context)
    metric.update(pred, true)
    assert metric.per_frame()["wrmse"] == pytest.approx([1.5, 2.0])
    assert metric.compute()["wrmse"] == pytest.approx(1.75)


def test_acc_by_hand():
    # anomalies p' = (1, 0), t' = (1, 1) on rows weighted 4/3, 2/3:
    # (4/3) / sqrt((4/3) * (4/3 + 2/3)) = sqrt(2/3)
    context = MetricContext(options={"latitudes": [0.0, 60.0]})
    climatology = torch.tensor([[10.0], [20.0]])
    metric = ACC("acc", context, climatology)
    true = torch.tensor([[11.0], [21.0]]).view(1, 1, 1, 2, 1)
    pred = torch.tensor([[11.0], [20.0]]).view(1, 1, 1, 2, 1)
    metric.update(pred, true)
    assert metric.compute()["acc"] == pytest.approx(math.sqrt(2 / 3))
    metric.reset()
    metric.update(2 * climatology.view(1, 1, 1, 2, 1) - true, true)  # opposite anomalies
    assert metric.compute()["acc"] == pytest.approx(-1.0)
    metric.reset()
    metric.update(climatology.view(1, 1, 1, 2, 1), true)  # no predicted anomaly: 0, not NaN
    assert metric.compute()["acc"] == 0.0


def test_acc_climatology_from_a_file_and_na_without_one(tmp_path):
    np.save(tmp_path / "clim.npy", np.full((1, 4, 4), 5.0))
    metric = build_acc(MetricContext(options={"climatology": str(tmp_path / "clim.npy")}))
    true = 5.0 + torch.rand(2, 3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    metric.update(true, true)
    assert metric.compute()["acc"] == pytest.approx(1.0)
    assert len(metric.per_frame()["acc"]) == 3
    missing = build_acc(MetricContext())
    assert "climatology" in missing.reason and "climatology" in missing.compute()["acc"].reason
    wrong = build_acc(MetricContext(options={"climatology": np.zeros((3, 3))}))
    with pytest.raises(UserError, match="does not fit"):
        wrong.update(true, true)


def enso_clips(index, rng, shape=(24, 48), rows=slice(10, 13), cols=slice(19, 30)):
    """SST clips [B, T, 1, H, W] whose Nino3.4-box average is ``index`` [B, T]; noise elsewhere."""
    b, t = index.shape
    sst = torch.from_numpy(rng.normal(0, 5, size=(b, t, 1) + shape))
    sst[:, :, 0, rows, cols] = index.view(b, t, 1, 1)
    return sst


def test_nino34_by_hand_on_the_icar_grid():
    assert ICAR_LATITUDES[10:13] == [-5.0, 0.0, 5.0] and ICAR_LONGITUDES[19:30][::10] == [190.0, 240.0]
    rng = np.random.default_rng(0)
    true_index = torch.tensor([[0.0, 3.0, 0.0, 3.0], [3.0, 0.0, 3.0, 0.0], [3.0, 3.0, 6.0, 6.0]], dtype=torch.float64)
    pred_index = torch.tensor([[0.0, 0.0, 3.0, 3.0], [3.0, 3.0, 0.0, 0.0], [3.0, 6.0, 9.0, 9.0]], dtype=torch.float64)
    # 3-month means: true (1, 2), (2, 1), (4, 5); predicted (1, 2), (2, 1), (6, 8)
    metric = Nino34("nino34", MetricContext())
    metric.update(enso_clips(pred_index[:2], rng), enso_clips(true_index[:2], rng))
    metric.update(enso_clips(pred_index[2:], rng), enso_clips(true_index[2:], rng))
    lead1 = np.corrcoef([1, 2, 6], [1, 2, 4])[0, 1]
    lead2 = np.corrcoef([2, 1, 8], [2, 1, 5])[0, 1]
    result = metric.compute()
    assert metric.per_frame()["nino34"] == pytest.approx([lead1, lead2], abs=1e-6)
    assert result["nino34"] == pytest.approx((lead1 + lead2) / 2, abs=1e-6)
    assert result["nino34_weighted"] == pytest.approx((0 * lead1 + 1.5 * math.log(2) * lead2) / 2, abs=1e-6)
    assert result["rmse_nino34"] == pytest.approx((math.sqrt(4 / 3) + math.sqrt(9 / 3)) / 2)


def test_nino34_on_a_named_grid_with_western_longitudes():
    rng = np.random.default_rng(1)
    lats = [-10.0, -2.5, 2.5, 10.0]
    lons = [-175.0, -165.0, -140.0, -125.0, -100.0]  # the box holds columns 1..3
    options = {"latitudes": lats, "longitudes": lons}
    true_index = torch.from_numpy(rng.normal(size=(5, 6)))
    pred = enso_clips(-true_index, rng, shape=(4, 5), rows=slice(1, 3), cols=slice(1, 4))
    true = enso_clips(true_index, rng, shape=(4, 5), rows=slice(1, 3), cols=slice(1, 4))
    metric = Nino34("nino34", MetricContext(options=options))
    metric.update(pred, true)
    assert metric.per_frame()["nino34"] == pytest.approx([-1.0] * 4, abs=1e-5)


def test_nino34_without_a_grid_or_months_is_unavailable():
    metric = Nino34("nino34", MetricContext())
    metric.update(torch.rand(2, 4, 1, 10, 10), torch.rand(2, 4, 1, 10, 10))
    assert "latitudes" in metric.unavailable_reason and "latitudes" in metric.compute()["nino34"].reason
    metric = Nino34("nino34", MetricContext())
    metric.update(torch.rand(2, 2, 1, 24, 48), torch.rand(2, 2, 1, 24, 48))
    assert "3 predicted months" in metric.unavailable_reason and metric.per_frame() is None


def test_lead_weights_follow_the_competition_formula():
    weights = lead_weights(24)
    assert weights[0] == 0.0
    assert weights[3] == pytest.approx(1.5 * math.log(4)) and weights[4] == pytest.approx(2 * math.log(5))
    assert weights[23] == pytest.approx(4 * math.log(24))
    assert len(lead_weights(12)) == 12


# ---------------------------------------------------------------- FAR, HSS, ETS (PredBench's formulas)

def table(pred, true, threshold):
    """Hits a, false alarms b, misses c, correct rejections d over every pixel, counted directly."""
    observed, forecast = true >= threshold, pred >= threshold
    return ((observed & forecast).sum(), (~observed & forecast).sum(), (observed & ~forecast).sum(),
            (~observed & ~forecast).sum())


def reference(name, a, b, c, d, eps=1e-4):
    """The scores as the verification literature writes them (PredBench's eps in the denominators)."""
    a, b, c, d = (float(v) for v in (a, b, c, d))
    if name == "far":
        return b / (a + b + eps)
    if name == "hss":
        return 2 * (a * d - b * c) / ((a + c) * (c + d) + (a + b) * (b + d) + eps)
    chance = (a + b) * (a + c) / (a + b + c + d)
    return (a - chance) / (a + b + c - chance + eps)


def test_far_hss_ets_by_hand():
    # 2x3 frame, threshold 0.5: a = 2 (positions 0, 1), b = 1 (2), c = 1 (3), d = 2 (4, 5)
    true = frames([[1, 1, 0], [1, 0, 0]])
    pred = frames([[1, 1, 1], [0, 0, 0]])
    options = {"csi_thresholds": [0.5]}
    eps = 1e-4
    assert scores("far", pred, true, options)[0]["far"] == pytest.approx(1 / (3 + eps))
    # HSS = 2 (2*2 - 1*1) / ((2+1)(1+2) + (2+1)(1+2)) = 6 / 18
    assert scores("hss", pred, true, options)[0]["hss"] == pytest.approx(6 / (18 + eps))
    # ETS: r = 3 * 3 / 6 = 1.5, (2 - 1.5) / (2 + 1 + 1 - 1.5) = 0.5 / 2.5
    assert scores("ets", pred, true, options)[0]["ets"] == pytest.approx(0.5 / (2.5 + eps))
    # a perfect forecast: HSS and ETS 1 (to eps), FAR 0; its negation: HSS -1
    assert scores("hss", true, true, options)[0]["hss"] == pytest.approx(1.0, abs=1e-4)
    assert scores("ets", true, true, options)[0]["ets"] == pytest.approx(1.0, abs=1e-4)
    assert scores("far", true, true, options)[0]["far"] == 0.0
    assert scores("hss", 1 - true, true, options)[0]["hss"] == pytest.approx(-1.0, abs=1e-4)


@pytest.mark.parametrize("name", ["far", "hss", "ets"])
def test_far_hss_ets_match_the_direct_formulas_per_threshold_and_frame(name):
    rng = np.random.default_rng(1)
    true = torch.from_numpy(rng.uniform(0, 255, size=(5, 3, 1, 12, 12)))
    pred = (true + torch.from_numpy(rng.normal(0, 50, size=true.shape))).clamp(0, 255)
    result, per_frame = scores(name, pred, true, chunks=5)
    thresholds = (16, 74, 133, 160, 181, 219)
    assert list(result) == [f"{name}_{t}" for t in thresholds] + [name]
    expected = [reference(name, *table(pred.numpy(), true.numpy(), t)) for t in thresholds]
    assert [result[f"{name}_{t}"] for t in thresholds] == pytest.approx(expected, rel=1e-12)
    assert result[name] == pytest.approx(np.mean(expected), rel=1e-12)
    for frame in range(3):  # per frame: the table of that lead time alone, averaged over thresholds
        direct = np.mean([reference(name, *table(pred[:, frame].numpy(), true[:, frame].numpy(), t))
                          for t in thresholds])
        assert per_frame[name][frame] == pytest.approx(direct, rel=1e-12)


def test_far_hss_ets_edge_cases_never_nan():
    # no event in either field: a = b = c = 0, all correct rejections -> 0 (PredBench's eps), not NaN
    zeros = torch.zeros(1, 2, 1, 3, 3, dtype=torch.float64)
    for name in ("far", "hss", "ets"):
        assert scores(name, zeros, zeros, {"csi_thresholds": [1.0]})[0][name] == 0.0
    # NaN pixels are in no cell of the table, not correct rejections
    true = frames([[1, 0], [0, float("nan")]])
    pred = frames([[1, 1], [0, 0]])
    a, b, c, d = 1, 1, 0, 1
    for name in ("far", "hss", "ets"):
        assert scores(name, pred, true, {"csi_thresholds": [0.5]})[0][name] == pytest.approx(
            reference(name, a, b, c, d))


# ---------------------------------------------------------------- latitude-weighted scores per channel

def test_weighted_scores_per_channel_and_variable():
    # three channels, errors 1, 2 and 4 everywhere (equal latitudes: weights 1): one key per channel, and the
    # variable 'z' (two levels) as the mean of its channels
    names = ["t2m", "z_500", "z_850"]
    context = MetricContext(options={"latitudes": [10.0, 10.0], "channel_names": names})
    true = torch.zeros(2, 3, 3, 2, 2, dtype=torch.float64)
    pred = true.clone()
    for channel, error in enumerate((1.0, 2.0, 4.0)):
        pred[:, :, channel] = error
    pred[:, 2, 0] = 3.0  # the last frame's t2m error is 3
    rmse, mae = WRMSE("wrmse", context), WMAE("wmae", context)
    for metric in (rmse, mae):
        metric.update(pred, true)
    result = rmse.compute()
    assert result["wrmse_t2m"] == pytest.approx((1 + 1 + 3) / 3)
    assert result["wrmse_z_500"] == pytest.approx(2.0) and result["wrmse_z_850"] == pytest.approx(4.0)
    assert result["wrmse_z"] == pytest.approx(3.0)
    assert result["wrmse"] == pytest.approx(np.mean([(1 + 2 + 4) / 3] * 2 + [(3 + 2 + 4) / 3]))
    assert set(result) == {"wrmse", "wrmse_t2m", "wrmse_z_500", "wrmse_z_850", "wrmse_z"}
    assert rmse.per_frame()["wrmse_t2m"] == pytest.approx([1.0, 1.0, 3.0])
    assert mae.compute()["wmae_z_850"] == pytest.approx(4.0)
    assert len(rmse.per_clip()["wrmse"]) == 2


def test_weighted_scores_per_channel_follow_predbench_per_channel_formula():
    # PredBench's cal_WeightedRMSE: per channel, mean over samples of sqrt(mean_{lat,lon} w (p - t)^2)
    rng = np.random.default_rng(3)
    lat = np.linspace(-80, 80, 6)
    pred, true = rng.normal(size=(4, 2, 2, 6, 5)), rng.normal(size=(4, 2, 2, 6, 5))
    w = np.cos(np.deg2rad(lat))
    w = (w / w.mean())[:, None]
    metric = WRMSE("wrmse", MetricContext(options={"latitudes": lat, "channel_names": "u10,v10"}))
    metric.update(torch.from_numpy(pred), torch.from_numpy(true))
    result = metric.compute()
    for channel, name in enumerate(("u10", "v10")):
        direct = np.sqrt((w * (pred[:, :, channel] - true[:, :, channel]) ** 2).mean(axis=(-1, -2))).mean()
        assert result[f"wrmse_{name}"] == pytest.approx(direct)
    assert "wrmse_u" not in result  # u10 / v10 are not levels of a variable


def test_metric_channels_select_what_is_scored():
    names = ["t2m", "u10", "z_500", "t_850"]
    options = {"latitudes": [0.0, 30.0], "channel_names": names, "metric_channels": ["t2m", "z_500", "t_850"]}
    true = torch.zeros(1, 1, 4, 2, 2, dtype=torch.float64)
    pred = true.clone()
    pred[:, :, 1] = 100.0  # u10 is not scored
    pred[:, :, 2] = 2.0
    metric = WRMSE("wrmse", MetricContext(options=options))
    metric.update(pred, true)
    result = metric.compute()
    assert set(result) == {"wrmse", "wrmse_t2m", "wrmse_z_500", "wrmse_t_850"}
    assert result["wrmse"] == pytest.approx(2.0 / 3)
    one = WRMSE("wrmse", MetricContext(options={**options, "metric_channels": "z_500"}))
    one.update(pred, true)
    assert one.compute() == pytest.approx({"wrmse": 2.0})  # one channel scored: no breakdown
    with pytest.raises(UserError, match="'metric_channels': q_700 not among"):
        WRMSE("wrmse", MetricContext(options={**options, "metric_channels": "q_700"})).update(pred, true)
    with pytest.raises(UserError, match="names 4 channels but the frames have 2"):
        WRMSE("wrmse", MetricContext(options={"channel_names": names})).update(pred[:, :, :2], true[:, :, :2])


def test_unnamed_channels_and_acc_per_channel():
    rng = np.random.default_rng(4)
    true = torch.from_numpy(rng.normal(size=(2, 2, 2, 4, 4)))
    climatology = torch.zeros(2, 4, 4, dtype=torch.float64)
    metric = ACC("acc", MetricContext(options={"metric_channels": "ch1"}), climatology)
    pred = true.clone()
    pred[:, :, 0] = -pred[:, :, 0]  # channel 0 anti-correlated, but not scored
    metric.update(pred, true)
    assert metric.compute() == pytest.approx({"acc": 1.0})
    metric = ACC("acc", MetricContext(), climatology)
    metric.update(pred, true)
    assert metric.compute() == pytest.approx({"acc": 0.0, "acc_ch0": -1.0, "acc_ch1": 1.0})
