"""Evaluation: the metrics of a task, streaming a test set through a model and them, timing each part."""
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import plugins
from .data import statistics_of
from .metrics import MetricContext, NotAvailable
from .profiling import Stopwatch
from .training import RunFailed, log


@dataclass
class EvalResult:
    """What streaming a test set through a model and metrics produced, with its timings."""

    metrics: Dict[str, Optional[float]]
    per_frame: Dict[str, List[float]]
    per_clip: Dict[str, List[float]]
    unavailable: Dict[str, str]
    info: Dict[str, Dict]
    provenance: Dict[str, Dict[str, str]]
    inference_seconds: float
    data_seconds: float
    metric_seconds: float
    sequences: int
    sample: Optional[Dict[str, np.ndarray]] = None
    notes: Dict[str, str] = field(default_factory=dict)


def build_metrics(names, dataset_spec, task, options=None, strict=True):
    """(name, spec, metric) for ``names``; with ``strict=False`` unregistered names are skipped (dataset defaults)."""
    context = MetricContext(
        dataset=dataset_spec.name, task=task.name, value_range=dataset_spec.value_range,
        data_range=dataset_spec.data_range,
        spatial_norm=bool(dataset_spec.metric_options.get("spatial_norm", False)),
        options={**dict(dataset_spec.metric_options), **dict(options or {})},
    )
    built = []
    for name in names:
        if not strict and name not in plugins.metrics():
            log(f"stbench: note: default metric '{name}' of {dataset_spec.name} is not installed; skipped")
            continue
        spec = plugins.get_metric(name)
        built.append((spec, spec.build(context)))
    return built


def test_loader(dataset, batch_size):
    return DataLoader(dataset, batch_size=int(batch_size), shuffle=False, num_workers=0)


def _info_of(spec, key):
    """A reported key's display facts: 'csi_74' is reported by metric 'csi' and shown as CSI_74."""
    info = spec.info()
    if key != spec.name:
        info["label"] = key.upper()
    return info


@torch.no_grad()
def evaluate(model, loader, metrics, dataset_spec, task, device="cpu", keep=None) -> EvalResult:
    """Stream the test set through the model and the metrics; time data, forward and metrics apart.

    ``metrics`` are ``(MetricSpec, Metric)`` pairs from :func:`build_metrics`. A prediction of the
    wrong shape or with NaN / inf values fails the run instead of ranking a row of "nan". ``keep(pred,
    true)`` (optional) receives every batch in native units (``--save-predictions``).
    """
    dataset_spec = statistics_of(dataset_spec, loader.dataset)  # data-derived normalisation, if any
    model.eval()
    for _, metric in metrics:
        metric.reset()
    data_s = infer_s = metric_s = 0.0
    sequences, sample = 0, None
    iterator = iter(loader)
    while True:
        start = time.perf_counter()
        try:
            x, y = next(iterator)
        except StopIteration:
            break
        x, y = x.to(device), y.to(device)
        data_s += time.perf_counter() - start
        with Stopwatch(device) as watch:
            pred = model(x, task.t_out)
        infer_s += watch.seconds
        if pred.shape != y.shape:
            raise RunFailed(f"model returned {tuple(pred.shape)} for targets {tuple(y.shape)}; "
                            f"forward(x, t_out) must return [B, t_out, C, H, W]")
        if not torch.isfinite(pred).all():
            raise RunFailed(f"model predicted NaN or inf values for test clips {sequences}..{sequences + len(x) - 1}; "
                            "the run is not ranked (train longer or lower the learning rate)")
        start = time.perf_counter()
        pred_n, true_n = dataset_spec.denormalize(pred.float()), dataset_spec.denormalize(y.float())
        for _, metric in metrics:
            metric.update(pred_n, true_n)
        metric_s += time.perf_counter() - start
        if keep is not None:
            keep(pred_n, true_n)
        if sample is None:
            sample = {"inputs": dataset_spec.denormalize(x[0].float()).cpu().numpy(),
                      "truth": true_n[0].cpu().numpy(), "pred": pred_n[0].cpu().numpy()}
        sequences += x.shape[0]
    values, per_frame, per_clip, unavailable, info, provenance = {}, {}, {}, {}, {}, {}
    for spec, metric in metrics:
        computed = metric.compute() if sequences else {}
        for key, value in computed.items():
            info[key] = _info_of(spec, key)
            if isinstance(value, NotAvailable) or value is None:
                values[key] = None
                unavailable[key] = value.reason if isinstance(value, NotAvailable) else "unavailable"
            else:
                values[key] = float(value)
        if sequences and not unavailable.get(metric.name):
            per_frame.update(metric.per_frame() or {})
            per_clip.update(metric.per_clip() or {})
        if metric.provenance():
            provenance[metric.name] = dict(metric.provenance())
    return EvalResult(values, per_frame, per_clip, unavailable, info, provenance, infer_s, data_s, metric_s,
                      sequences, sample)
