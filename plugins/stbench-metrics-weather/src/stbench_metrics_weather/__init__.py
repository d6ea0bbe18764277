"""stbench metric plugin: weather and climate scores.

- ``csi``, ``pod``, ``sucr``, ``bias``, ``far``, ``hss``, ``ets``: contingency scores per threshold (SEVIR
  VIL defaults 16, 74, 133, 160, 181, 219; option ``csi_thresholds``), from hit / miss / false-alarm /
  correct-rejection counts over the set.
- ``wrmse``, ``wmae``, ``acc``: latitude-weighted scores (option ``latitudes``, default an equiangular
  global grid), per channel and variable when a frame has several (options ``channel_names``,
  ``metric_channels``); ``acc`` needs the option ``climatology`` and is "n/a" without it.
- ``nino34``: Nino3.4 index correlation for ENSO (options ``latitudes`` / ``longitudes``, default
  the ICAR-ENSO 24x48 grid).
"""
from functools import partial

from stbench import MetricSpec, Setting, hookimpl, lazy

# the scores (torch) load when a metric is built, so registering (and `stbench list`) imports no torch
_contingency = lazy("stbench_metrics_weather.categorical:ContingencyScore")


def build(name):
    """The builder of contingency score ``name`` (``build(name)(context) -> Metric``)."""
    return partial(_contingency, name)


# the metric options each score reads (--metric-option KEY=VALUE; arrays as lists, "a,b,c" or a .npy path)
THRESHOLDS = {"csi_thresholds": "any"}
GRID = {"latitudes": "any", "channel_names": "any", "metric_channels": "any"}


build_wrmse = lazy("stbench_metrics_weather.gridded:build_wrmse")
build_wmae = lazy("stbench_metrics_weather.gridded:build_wmae")
build_acc = lazy("stbench_metrics_weather.gridded:build_acc")
build_nino34 = lazy("stbench_metrics_weather.enso:build_nino34")

METRICS = [
    MetricSpec("csi", build("csi"), True,
               "critical success index hits/(hits+misses+false alarms), mean over thresholds", options=THRESHOLDS),
    MetricSpec("pod", build("pod"), True, "probability of detection hits/(hits+misses), mean over thresholds",
               options=THRESHOLDS),
    MetricSpec("sucr", build("sucr"), True, "success ratio hits/(hits+false alarms), mean over thresholds",
               options=THRESHOLDS),
    MetricSpec("bias", build("bias"), False, "frequency bias (hits+false alarms)/(hits+misses), mean over "
                                             "thresholds; best at 1, not at an extreme", target=1.0,
               options=THRESHOLDS),
    MetricSpec("far", build("far"), False, "false alarm ratio false alarms/(hits+false alarms), mean over thresholds",
               options=THRESHOLDS),
    MetricSpec("hss", build("hss"), True, "Heidke skill score 2(ad-bc)/((a+c)(c+d)+(a+b)(b+d)) (a hits, b false "
                                          "alarms, c misses, d correct rejections), mean over thresholds",
               options=THRESHOLDS),
    MetricSpec("ets", build("ets"), True, "equitable threat score (hits-r)/(hits+misses+false alarms-r), r the hits "
                                          "expected by chance, mean over thresholds", options=THRESHOLDS),
    MetricSpec("wrmse", build_wrmse, False, "latitude-weighted RMSE per frame and channel (WeatherBench)", options=GRID),
    MetricSpec("wmae", build_wmae, False, "latitude-weighted MAE per channel", options=GRID),
    MetricSpec("acc", build_acc, True, "latitude-weighted anomaly correlation per channel against "
                                       "options['climatology']", options={**GRID, "climatology": "any"}),
    MetricSpec("nino34", build_nino34, True, "Nino3.4 index correlation over the set, mean over leads "
                                             "(3-month running mean; C-Nino3.4-M)",
               options={**GRID, "longitudes": "any", "nino34_channel": Setting("int", minimum=0)}),
]


@hookimpl
def stbench_register_metrics(register):
    for spec in METRICS:
        register(spec)
