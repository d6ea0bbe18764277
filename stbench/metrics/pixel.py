"""The built-in pixel metrics (MSE, MAE, RMSE, SSIM, PSNR), declared without torch.

Their implementation is :mod:`stbench.metrics.pixel_scores`, imported when a metric is built; the
names it defines are also reachable here (``from stbench.metrics.pixel import SSIM``).
"""
from functools import partial

from ..config import Setting
from ..hookspecs import hookimpl
from ..specs import MetricSpec, lazy, lazy_exports

_build = lazy("stbench.metrics.pixel_scores:build")


def _spec(name, higher, text, decimals, unit="", options=None):
    return MetricSpec(name=name, build=partial(_build, name), higher_is_better=higher, description=text,
                      label=name.upper(), unit=unit, decimals=decimals, options=options or {})


# decimals as the published tables print them: errors and PSNR 2, SSIM 4
PIXEL_METRICS = [
    _spec("mse", False, "mean squared error, summed over C*H*W per frame (per-pixel mean for spatial_norm "
          "data)", 2),
    _spec("mae", False, "mean absolute error, summed over C*H*W per frame (per-pixel mean for spatial_norm "
          "data)", 2),
    _spec("rmse", False, "square root of the averaged MSE", 2),
    _spec("ssim", True, "structural similarity per frame, skimage conventions (7x7 uniform window); key "
          "'ssim' with data_range = the value range, 'ssim_openstl' with twice it (OpenSTL's published "
          "convention)", 4, options={"ssim_data_range": Setting("number", above=0)}),
    _spec("psnr", True, "peak signal-to-noise ratio per frame", 2, unit="dB"),
]


_ensemble = lazy("stbench.metrics.ensemble:build")
# scores of K samples per clip together (stochastic models, --samples K >= 2); n/a otherwise
ENSEMBLE_METRICS = [
    MetricSpec(name="crps", build=partial(_ensemble, "crps"), higher_is_better=False, label="CRPS", decimals=4,
               options={},
               description="continuous ranked probability score of the K samples, ensemble (fair) form "
                           "E|X-Y| - 0.5 E|X-X'| per pixel (WeatherBench 2), averaged over pixels"),
    MetricSpec(name="spread_skill", build=partial(_ensemble, "spread_skill"), higher_is_better=False, target=1.0,
               label="SPREAD/SKILL", decimals=3, options={},
               description="sqrt(mean ensemble variance) / RMSE of the ensemble mean (WeatherBench 2); 1 is ideal"),
]


@hookimpl
def stbench_register_metrics(register):
    for spec in PIXEL_METRICS + ENSEMBLE_METRICS:
        register(spec)


__getattr__ = lazy_exports(__name__, {
    "stbench.metrics.pixel_scores": ("MAE", "MSE", "PSNR", "RMSE", "SSIM", "ssim_frames", "METRIC_CLASSES", "build"),
})
