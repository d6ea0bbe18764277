"""Evaluation: the metrics of a task, streaming a test set through a model and them, timing each part."""
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import plugins
from .data import statistics_of
from .metrics import MetricContext, NotAvailable
from .distributed import SINGLE
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


def _interleave(parts):
    """Rank r's j-th clip is test clip j * world + r: put the gathered clips back in test order."""
    rows = []
    for j in range(max(len(p) for p in parts)):
        rows += [part[j] for part in parts if j < len(part)]
    return torch.stack(rows) if rows else parts[0][:0]


def _info_of(spec, key):
    """A reported key's display facts: 'csi_74' is reported by metric 'csi' and shown as CSI_74."""
    info = spec.info()
    if key != spec.name:
        info["label"] = key.upper()
    return info


def _batches(dataset, batch_size, processes, loading):
    """This process's test batches: the whole set, or every world-th clip from its rank on. Every process
    makes the same number of steps (an exhausted one sends nothing), so the exchange never waits forever."""
    from torch.utils.data import Subset

    share = dataset if not processes.active else Subset(dataset, range(processes.rank, len(dataset), processes.world))
    loader = DataLoader(share, batch_size=int(batch_size), shuffle=False, num_workers=loading.workers,
                        pin_memory=loading.pin_memory)
    per_process = -(-len(dataset) // processes.world)  # ceilings
    steps = -(-per_process // int(batch_size))
    iterator = iter(loader)
    for _ in range(steps):
        yield next(iterator, None)


@torch.no_grad()
def evaluate(model, dataset, batch_size, metrics, dataset_spec, task, device="cpu", keep=None,
             processes=SINGLE, loading=None, precision="32") -> EvalResult:
    """Stream the test set through the model and the metrics; time data, forward and metrics apart.

    ``metrics`` are ``(MetricSpec, Metric)`` pairs from :func:`build_metrics`. A prediction of the
    wrong shape or with NaN / inf values fails the run instead of ranking a row of "nan". ``keep(pred,
    true)`` (optional) receives every batch in native units (``--save-predictions``).

    With several processes each runs the model on its share of the clips (clip i on rank i mod world);
    the predictions come together on rank 0 in test order, where the metrics run, so every metric (FVD's
    set statistics too) equals a single-process evaluation: no clip counted twice or dropped.
    """
    from .training import Loading, autocast

    loading = loading or Loading()
    dataset_spec = statistics_of(dataset_spec, dataset)  # data-derived normalisation, if any
    model.eval()
    for _, metric in metrics:
        metric.reset()
    data_s = infer_s = metric_s = 0.0
    sequences, sample = 0, None
    per_process = -(-len(dataset) // processes.world)
    iterator = iter(tqdm(_batches(dataset, batch_size, processes, loading), total=-(-per_process // int(batch_size)),
                         desc="evaluating", unit="batch", leave=False, disable=None if processes.main else True))
    reference = (int(batch_size), task.t_out, *task.shape)
    first = True
    while True:
        start = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        count = 0 if batch is None else len(batch[0])
        if batch is not None:
            x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        data_s += time.perf_counter() - start
        if count:
            with Stopwatch(device) as watch, autocast(device, precision):
                pred = model(x, task.t_out)
            infer_s += watch.seconds
            if pred.shape != y.shape:
                raise RunFailed(f"model returned {tuple(pred.shape)} for targets {tuple(y.shape)}; "
                                f"forward(x, t_out) must return [B, t_out, C, H, W]")
            pred = pred.float()
        else:
            x = torch.zeros((0, task.t_in, *task.shape), device=device)
            pred = y = torch.zeros((0, *reference[1:]), device=device)
        if processes.active:
            preds = processes.gather(pred, count, reference[0])
            trues = processes.gather(y.float(), count, reference[0])
            inputs = processes.gather(x.float(), count, reference[0]) if first else None  # every rank alike
            first = False
            if not processes.main:
                continue
            pred, y = _interleave(preds), _interleave(trues)
            if inputs is not None:
                x = _interleave(inputs)
            if not len(pred):
                continue
        if not torch.isfinite(pred).all():
            raise RunFailed(f"model predicted NaN or inf values for test clips {sequences}..{sequences + len(pred) - 1}; "
                            "the run is not ranked (train longer or lower the learning rate)")
        start = time.perf_counter()
        pred_n, true_n = dataset_spec.denormalize(pred), dataset_spec.denormalize(y.float())
        for _, metric in metrics:
            metric.update(pred_n, true_n)
        metric_s += time.perf_counter() - start
        if keep is not None:
            keep(pred_n, true_n)
        if sample is None:
            sample = {"inputs": dataset_spec.denormalize(x[0].float()).cpu().numpy(),
                      "truth": true_n[0].cpu().numpy(), "pred": pred_n[0].cpu().numpy()}
        sequences += pred.shape[0]
    infer_s = processes.maximum(infer_s)
    if not processes.main:
        return EvalResult({}, {}, {}, {}, {}, {}, infer_s, data_s, metric_s, 0)
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


class PredictionWriter:
    """The whole test set's predictions and targets in native units, streamed into ``predictions.npy`` and
    ``targets.npy`` of the run folder (renamed into place when complete), for ``stbench score`` later.
    Data in [0, 1] or [0, 255] is stored as uint8 (``stbench score`` reads uint8 [0, 1] data as value / 255);
    anything else as float32."""

    def __init__(self, run_dir: Path, spec, count: int, task):
        lo, hi = spec.value_range or (None, None)
        self.scale = {(0.0, 1.0): 255.0, (0.0, 255.0): 1.0}.get((lo, hi))
        dtype = np.uint8 if self.scale else np.float32
        shape = (count, task.t_out, *task.shape)
        self.paths = [run_dir / "predictions.npy", run_dir / "targets.npy"]
        self.temps = [p.with_name(f".{p.name}.tmp{os.getpid()}") for p in self.paths]
        self.arrays = [np.lib.format.open_memmap(t, mode="w+", dtype=dtype, shape=shape) for t in self.temps]
        self.filled = 0

    def __call__(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        n = pred.shape[0]
        for array, values in zip(self.arrays, (pred, true)):
            values = values.detach().cpu().numpy()
            if self.scale:
                values = np.clip(np.rint(values * self.scale), 0, 255)
            array[self.filled:self.filled + n] = values
        self.filled += n

    def close(self) -> None:
        for array, temp, path in zip(self.arrays, self.temps, self.paths):
            array.flush()
            del array
            os.replace(temp, path)
        self.arrays = []
