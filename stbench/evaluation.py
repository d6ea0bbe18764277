"""Evaluation: the metrics of a task, streaming a test set through a model and them, timing each part."""
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
from .diagnostics import Diagnostics
from .metrics import MetricContext, NotAvailable
from .metrics.base import one_thread
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
    sampling: Optional[Dict] = None  # K > 1 samples per clip: the protocol, seeds and per-sample values
    diagnostics: Optional[Dict] = None  # is the row degenerate? (stbench.diagnostics)


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


SEED_FORMULA = "seed + 1000003 * sample + 7919 * (batch * world + rank)"


def sample_seed(seed: int, sample: int, batch: int, processes) -> int:
    """The seed torch's generator gets before sample ``sample`` of test batch ``batch`` (see SEED_FORMULA)."""
    return (int(seed) + 1000003 * int(sample) + 7919 * (int(batch) * processes.world + processes.rank)) % (2 ** 63)


@torch.no_grad()
def evaluate(model, dataset, batch_size, metrics, dataset_spec, task, device="cpu", keep=None,
             processes=SINGLE, loading=None, precision="32", samples=1, seed=0, more_metrics=None) -> EvalResult:
    """Stream the test set through the model and the metrics; time data, forward and metrics apart.

    ``metrics`` are ``(MetricSpec, Metric)`` pairs from :func:`build_metrics`. A prediction of the
    wrong shape or with NaN / inf values fails the run instead of ranking a row of "nan". ``keep(pred,
    true)`` (optional) receives every batch in native units (``--save-predictions``).

    With several processes each runs the model on its share of the clips (clip i on rank i mod world);
    the predictions come together on rank 0 in test order, where the metrics run, so every metric (FVD's
    set statistics too) equals a single-process evaluation: no clip counted twice or dropped.

    A stochastic model (``model.stochastic``) with ``samples`` K > 1 predicts every clip K times, torch's
    generator seeded by :func:`sample_seed` before each; sample k is scored by its own metrics (``metrics``
    for the first, ``more_metrics()`` builds the others) and ensemble metrics see all K together. The result's
    metrics are best-of-K per clip (see :func:`combine_samples`); ``keep`` and the sample strip get sample 0.
    """
    from .training import Loading, autocast

    loading = loading or Loading()
    samples = int(samples) if model.stochastic else 1
    sets = [metrics] + [more_metrics() for _ in range(samples - 1)]
    dataset_spec = statistics_of(dataset_spec, dataset)  # data-derived normalisation, if any
    model.eval()
    for metric_set in sets:
        for _, metric in metric_set:
            metric.reset()
    data_s = infer_s = metric_s = 0.0
    sequences, sample = 0, None
    per_process = -(-len(dataset) // processes.world)
    iterator = iter(tqdm(_batches(dataset, batch_size, processes, loading), total=-(-per_process // int(batch_size)),
                         desc="evaluating", unit="batch", leave=False, disable=None if processes.main else True))
    reference = (int(batch_size), task.t_out, *task.shape)
    diagnostics = Diagnostics()
    first = True
    step = -1
    while True:
        start = time.perf_counter()
        try:
            with one_thread(loading.workers == 0):  # clip reading in this process: many small operations
                batch = next(iterator)
        except StopIteration:
            break
        step += 1
        count = 0 if batch is None else len(batch[0])
        if batch is not None:
            x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        data_s += time.perf_counter() - start
        preds = []
        for k in range(samples):
            if count:
                if samples > 1 or model.stochastic:
                    torch.manual_seed(sample_seed(seed, k, step, processes))
                with Stopwatch(device) as watch, autocast(device, precision):
                    pred = model(x, task.t_out)
                infer_s += watch.seconds
                if pred.shape != y.shape:
                    raise RunFailed(f"model returned {tuple(pred.shape)} for targets {tuple(y.shape)}; "
                                    f"forward(x, t_out) must return [B, t_out, C, H, W]")
                preds.append(pred.float())
            else:
                preds.append(torch.zeros((0, *reference[1:]), device=device))
        if not count:
            x = torch.zeros((0, task.t_in, *task.shape), device=device)
            y = torch.zeros((0, *reference[1:]), device=device)
        if processes.active:
            gathered = [processes.gather(pred, count, reference[0]) for pred in preds]
            trues = processes.gather(y.float(), count, reference[0])
            inputs = processes.gather(x.float(), count, reference[0]) if first else None  # every rank alike
            lasts = processes.gather(x[:, -1].float(), count, reference[0])
            first = False
            if not processes.main:
                continue
            preds, y, last = [_interleave(parts) for parts in gathered], _interleave(trues), _interleave(lasts)
            if inputs is not None:
                x = _interleave(inputs)
            if not len(y):
                continue
        else:
            last = x[:, -1]
        for pred in preds:
            if not torch.isfinite(pred).all():
                raise RunFailed(f"model predicted NaN or inf values for test clips {sequences}..{sequences + len(pred) - 1}; "
                                "the run is not ranked (train longer or lower the learning rate)")
        start = time.perf_counter()
        true_n = dataset_spec.denormalize(y.float())
        natives = [dataset_spec.denormalize(pred) for pred in preds]
        for metric_set, pred_n in zip(sets, natives):
            for _, metric in metric_set:
                if not metric.ensemble:
                    metric.update(pred_n, true_n)
        for _, metric in sets[0]:
            if metric.ensemble:
                metric.update_ensemble(torch.stack(natives), true_n)
        diagnostics.update(dataset_spec.denormalize(last.float()[:, None])[:, 0], natives[0], true_n)
        metric_s += time.perf_counter() - start
        if keep is not None:
            keep(natives[0], true_n)
        if sample is None:
            sample = {"inputs": dataset_spec.denormalize(x[0].float()).cpu().numpy(),
                      "truth": true_n[0].cpu().numpy(), "pred": natives[0][0].cpu().numpy()}
        sequences += y.shape[0]
    infer_s = processes.maximum(infer_s)
    if not processes.main:
        return EvalResult({}, {}, {}, {}, {}, {}, infer_s, data_s, metric_s, 0)
    computed = [_computed(sets[0], sequences)] + [_computed(metric_set, sequences, ensembles=False)
                                                  for metric_set in sets[1:]]
    values, per_frame, per_clip, unavailable, info, provenance = computed[0]
    sampling = None
    if samples > 1:
        values, per_frame, per_clip, sampling = combine_samples(computed, samples)
        sampling.update(seed=int(seed), seed_formula=SEED_FORMULA, eval_batch_size=int(batch_size),
                        world_size=processes.world)
        for key in list(values):
            for suffix, label in (("mean", "mean of K"), ("spread", "spread")):
                name = f"{key}_{suffix}"
                if name in values:
                    info[name] = dict(info.get(key, {}), label=f"{info.get(key, {}).get('label', key.upper())} "
                                                                f"({label})")
                    if suffix == "spread":
                        info[name].update(higher_is_better=False, target=None, rank=False)
    return EvalResult(values, per_frame, per_clip, unavailable, info, provenance, infer_s, data_s, metric_s,
                      sequences, sample, sampling=sampling, diagnostics=diagnostics.result())


def keyed(spec, metric, result) -> Dict:
    """A metric's result (``compute``, ``per_frame`` or ``per_clip``) keyed by its registered name: the key named
    ``Metric.name`` becomes ``MetricSpec.name``; the other keys it reports (``csi_74``) keep their form."""
    return {spec.name if key == metric.name else key: value for key, value in (result or {}).items()}


def _computed(metrics, sequences, ensembles=True):
    """(values, per_frame, per_clip, unavailable, info, provenance) of one set of metrics after a pass (the
    ensemble metrics only where ``ensembles``: they see all samples in the first set)."""
    values, per_frame, per_clip, unavailable, info, provenance = {}, {}, {}, {}, {}, {}
    for spec, metric in metrics:
        if metric.ensemble and not ensembles:
            continue
        computed = keyed(spec, metric, metric.compute()) if sequences else {}
        for key, value in computed.items():
            info[key] = _info_of(spec, key)
            if isinstance(value, NotAvailable) or value is None:
                values[key] = None
                unavailable[key] = value.reason if isinstance(value, NotAvailable) else "unavailable"
            else:
                values[key] = float(value)
        if sequences and not unavailable.get(spec.name):
            per_frame.update(keyed(spec, metric, metric.per_frame()))
            per_clip.update(keyed(spec, metric, metric.per_clip()))
        if metric.provenance():
            provenance[spec.name] = dict(metric.provenance())
    return values, per_frame, per_clip, unavailable, info, provenance


def _best(values: np.ndarray, info: Dict) -> np.ndarray:
    """The best of each row's samples (``values`` [clips, K]) in the metric's direction (or nearest its target)."""
    if info.get("target") is not None:
        return values[np.arange(len(values)), np.abs(values - float(info["target"])).argmin(1)]
    return values.max(1) if info.get("higher_is_better") else values.min(1)


def combine_samples(computed, samples: int):
    """Best-of-K, the mean over samples and the spread, from each sample's ``_computed`` tuple.

    For a key with per-clip values: the reported value is the mean over clips of each clip's best sample (the
    convention of the SV2P / SAVP / SVG tables) and its per-clip values are those bests; ``<key>_mean`` is the
    mean over samples of the whole-set value and ``<key>_spread`` the mean over clips of the sample standard
    deviation across the K samples. A set-level key (FVD, CSI) has no per-clip values: it reports the mean over
    samples, ``<key>_spread`` the standard deviation of the K set values. Per-frame curves are the mean over
    samples. Ensemble metrics (CRPS, spread/skill) come from the first set, which saw all samples together.
    """
    first_values, first_frames, _, _, info, _ = computed[0]
    values, per_frame, per_clip, every_clip = {}, {}, {}, {}
    best_of_k, set_level = [], []
    for key, value in first_values.items():
        per_sample = [c[0].get(key) for c in computed]
        if value is None or any(v is None for v in per_sample[1:]) or key not in computed[-1][0]:
            values[key] = value  # ensemble metrics and unavailable ones: as the first set has them
            continue
        clips = [c[2].get(key) for c in computed]
        if all(c is not None for c in clips):
            table = np.asarray(clips, dtype=np.float64).T  # [clips, K]
            best = _best(table, info.get(key, {}))
            values[key], per_clip[key] = float(best.mean()), [float(v) for v in best]
            values[f"{key}_spread"] = float(table.std(1, ddof=1).mean())
            every_clip[key] = [[float(v) for v in row] for row in table]
            best_of_k.append(key)
        else:
            values[key] = float(np.mean(per_sample))
            values[f"{key}_spread"] = float(np.std(per_sample, ddof=1))
            set_level.append(key)
        values[f"{key}_mean"] = float(np.mean(per_sample))
    for key in first_frames:
        curves = [c[1].get(key) for c in computed if c[1].get(key) is not None]
        per_frame[key] = [float(v) for v in np.mean(np.asarray(curves, dtype=np.float64), axis=0)]
    sampling = {"k": int(samples), "best_of_k": best_of_k, "mean_over_samples": set_level,
                "per_sample": {key: [c[0].get(key) for c in computed] for key in first_values
                               if key in best_of_k or key in set_level},
                "per_clip_samples": every_clip}
    return values, per_frame, per_clip, sampling


class PredictionWriter:
    """The whole test set's predictions and targets in native units, streamed into ``predictions.npy`` and
    ``targets.npy`` of the run folder (renamed into place when complete), for ``stbench score`` later.
    Data in [0, 1] or [0, 255] is stored as uint8 (``stbench score`` reads uint8 [0, 1] data as value / 255);
    anything else as float32. Both files' space is reserved before the first clip is evaluated and they are
    written with ordinary writes (never a memory map, which a full disk turns into SIGBUS): a disk too small
    is one line, and :meth:`abort` leaves no temporary file."""

    def __init__(self, run_dir: Path, spec, count: int, task):
        from .files import NpyStream

        lo, hi = spec.value_range or (None, None)
        self.scale = {(0.0, 1.0): 255.0, (0.0, 255.0): 1.0}.get((lo, hi))
        dtype = np.uint8 if self.scale else np.float32
        shape = (count, task.t_out, *task.shape)
        self.paths = [run_dir / "predictions.npy", run_dir / "targets.npy"]
        self.streams = []
        try:
            for path in self.paths:
                self.streams.append(NpyStream(path, dtype, shape))
        except BaseException:
            self.abort()
            raise

    def __call__(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        for stream, values in zip(self.streams, (pred, true)):
            values = values.detach().cpu().numpy()
            if self.scale:
                values = np.clip(np.rint(values * self.scale), 0, 255)
            try:
                stream.write(values)
            except BaseException:
                self.abort()
                raise

    def close(self) -> None:
        try:
            for stream in self.streams:
                stream.commit()
        except BaseException:
            self.abort()
            raise
        self.streams = []

    def abort(self) -> None:
        """Remove whatever was not renamed into place (a failed run leaves no temporary file)."""
        for stream in self.streams:
            stream.discard()
        self.streams = []
