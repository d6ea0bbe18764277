"""The run record: its typed shape, the one writer (atomic) and the one reader (migrating older records)."""
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, TypedDict

from .errors import UserError
from .files import write_json_atomic, write_text_atomic  # noqa: F401 - write_text_atomic is re-exported
from .tasks import check_name

RECORD_NAME = "record.json"
EVALUATIONS_DIR = "evaluations"
SCHEMA_VERSION = 2
STATUSES = ("running", "ok", "failed")


class RunRecord(TypedDict, total=False):
    """One run's record (``record.json``): what was run, under which settings and where, and what came out.

    Identity: ``run`` (folder name), ``config_hash`` (training identity: what changes the weights) and
    ``evaluation["hash"]`` (metrics, options and test clips asked for). ``metric_info`` holds each
    metric key's direction / target / label / unit / decimals, so a leaderboard renders with no plugin
    installed. Numbers that are not finite are stored as strings ('inf').
    """

    schema_version: int
    status: str  # running | ok | failed
    error: Optional[str]
    run: str
    model: str
    family: str
    model_plugin: Optional[str]
    task: str
    dataset: str
    protocol: str
    t_in: int
    t_out: int
    shape: List[int]
    profile: str
    seed: int
    precision: str
    distributed: Dict[str, Any]  # world_size, backend, global_batch, per_process_batch, launcher
    loading: Dict[str, Any]  # DataLoader workers, pin_memory, persistent_workers
    compile: Dict[str, Any]  # --compile: requested, used, targets, seconds (inference, training), note
    budget: Dict[str, Any]  # kind (epochs | seconds | macs), value, epochs, train_clips, batch_size, ...
    overrides: Dict[str, Any]
    train: Dict[str, Any]
    hparams: Dict[str, Any]
    settings_sources: Dict[str, Dict[str, str]]  # train / hparams: where each resolved setting came from
    config_hash: str
    metric_options: Dict[str, Any]
    evaluation: Dict[str, Any]  # hash, metrics asked for, source (trained | re-evaluated | checkpoint), checkpoint
    data: Dict[str, Any]  # root, train {clips, source}, test {clips, source}
    image_origin: str
    params: int
    macs: int
    flops_convention: str
    notes: Dict[str, Any]
    joint: Optional[Dict[str, Any]]
    versions: Dict[str, Any]
    hardware: Dict[str, Any]
    created: str
    epochs: int
    steps: int
    resumed_from_epoch: Optional[int]
    train_losses: List[float]
    train_seconds: float
    train_seconds_per_epoch: Optional[float]
    inference_seconds: float
    test_sequences: int
    fps: Optional[float]
    eval_data_seconds: float
    eval_metric_seconds: float
    metrics: Dict[str, Optional[float]]
    metric_info: Dict[str, Dict[str, Any]]
    metrics_unavailable: Dict[str, str]
    metric_provenance: Dict[str, Dict[str, str]]
    per_frame: Dict[str, List[float]]
    per_clip: Dict[str, List[float]]
    checkpoint: Optional[str]
    sample: Optional[str]
    selection: Optional[Dict[str, Any]]  # which weights were evaluated: on last | val | test, epoch, score, history
    stochastic: bool  # the model samples (STModel.stochastic)
    samples: int  # predictions per test clip (K); 1 for deterministic models
    sampling: Dict[str, Any]  # K > 1: best-of-K / mean keys, seeds and their formula, per-sample and per-clip values
    duration_seconds: float


REQUIRED = ("status", "run", "model", "task", "profile", "seed")


class BadRecord(ValueError):
    """A record file that cannot be used (truncated, not a JSON object, fields missing)."""


def clean_floats(value):
    """NaN/inf are not JSON; keep them readable as strings ('inf') instead of invalid tokens."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: clean_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_floats(v) for v in value]
    return value


def write_record(run_dir, record: RunRecord) -> Path:
    """Write ``run_dir/record.json`` atomically. A finished record of another evaluation of the same run
    (other metrics or test clips) is kept under ``run_dir/evaluations/`` first: nothing written is lost."""
    path = Path(run_dir) / RECORD_NAME
    record["schema_version"] = SCHEMA_VERSION
    previous = read_record(path) if path.exists() else None
    new_hash = (record.get("evaluation") or {}).get("hash")
    old_hash = ((previous or {}).get("evaluation") or {}).get("hash")
    if previous and previous.get("status") == "ok" and old_hash != new_hash:
        keep = Path(run_dir) / EVALUATIONS_DIR / f"record.{old_hash or 'v1'}.json"
        write_json_atomic(keep, clean_floats(previous))
    return write_json_atomic(path, clean_floats(record))


def read_json(path) -> Optional[Dict[str, Any]]:
    """A small JSON object stbench wrote (a cache), or None when it is missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_record(path) -> Optional[RunRecord]:
    """The record at ``path`` (migrated to the current schema), or None when it is not usable."""
    try:
        return load_record(path)
    except BadRecord:
        return None


def load_record(path) -> RunRecord:
    """The record at ``path``, migrated to the current schema; :class:`BadRecord` says why it is unusable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise BadRecord(f"cannot read it ({error})") from None
    except ValueError as error:
        raise BadRecord(f"not valid JSON ({error}); it may be truncated") from None
    if not isinstance(record, dict):
        raise BadRecord(f"holds a JSON {type(record).__name__}, not an object")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise BadRecord(f"lacks the field(s) {', '.join(missing)}")
    if record["status"] not in STATUSES:
        raise BadRecord(f"has an unknown status {record['status']!r}")
    for key in ("run", "model", "task", "profile"):
        try:
            check_name(record[key], key)  # these name files and folders: never a path out of --out
        except UserError as error:
            raise BadRecord(str(error)) from None
    return migrate(record)


def migrate(record: Dict[str, Any]) -> RunRecord:
    """Bring a record of an older schema to the current one (in memory; the file stays as written).

    Version 1 (before 2026-11-29) lacks ``metric_info`` (filled in from the known metrics' conventions
    where it can be: the core pixel metrics and the bundled plugins' metrics), ``evaluation`` and
    ``hardware.pointwise``.
    """
    version = int(record.get("schema_version", 1))
    if version < 2:
        info = record.setdefault("metric_info", {})
        for key in record.get("metrics") or {}:
            info.setdefault(key, legacy_metric_info(key))
        record.setdefault("evaluation", {"hash": None, "source": "trained",
                                         "metrics": list(record.get("metrics") or {})})
        record.setdefault("hardware", {}).setdefault("pointwise", "unrecorded")
        record["migrated_from"] = version
    return record


# Metric conventions of records written before metric_info existed (schema 1): the metrics stbench
# and its bundled plugins reported then. Unknown keys read as lower-is-better.
_LEGACY_HIGHER = {"ssim", "psnr", "csi", "pod", "sucr", "acc", "nino34"}
_LEGACY_TARGET = {"bias": 1.0}


def legacy_metric_info(key: str) -> Dict[str, Any]:
    base = key.split("_")[0]
    return {"higher_is_better": base in _LEGACY_HIGHER, "target": _LEGACY_TARGET.get(base),
            "label": key.upper(), "unit": "", "decimals": 4}


def read_records(out_dir, report=None) -> List[RunRecord]:
    """Every usable record under ``out_dir/runs``; each unusable one is reported in one line and skipped."""
    report = report or (lambda line: print(line, file=sys.stderr))
    records = []
    for path in sorted(Path(out_dir, "runs").glob(f"*/*/{RECORD_NAME}")):
        try:
            record = load_record(path)
        except BadRecord as error:
            report(f"stbench: warning: skipped the run record {path.resolve()}: it {error}")
            continue
        record["_path"] = str(path)
        records.append(record)
    return records


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def versions() -> Dict[str, Any]:
    import numpy
    import torch

    from . import __version__
    from .plugins import plugin_info

    found = {"stbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
             "numpy": numpy.__version__}
    found["plugins"] = {p["name"]: p["version"] for p in plugin_info()}
    return found


def hardware(device) -> Dict[str, Any]:
    """Where the timings were taken: device, CPU, threads, malloc mode, pointwise backend, GPU."""
    import torch

    from .allocator import in_effect

    info = {"device": str(device), "cpu": _cpu_name(), "cpu_threads": torch.get_num_threads(),
            "malloc": in_effect(), "pointwise": os.environ.get("STBENCH_POINTWISE") or "auto",
            "platform": platform.platform()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["gpu_count"] = torch.cuda.device_count()
    return info


def hardware_label(record) -> str:
    hw = record.get("hardware", {})
    if hw.get("gpu"):
        return hw["gpu"]
    malloc = f", malloc {hw['malloc']}" if hw.get("malloc") else ""  # records before 2026-11-23 lack it
    return f"{hw.get('cpu', 'CPU')} ({hw.get('cpu_threads', '?')} threads{malloc})"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---------------------------------------------------------------- building a record

def start_record(plan, part, model, data, device, evaluation: Dict[str, Any], macs: int) -> RunRecord:
    """The record of one task of a run about to train: every resolved setting, sizes, versions, hardware.

    ``data`` holds ``root`` and the ``train`` / ``test`` descriptions (:func:`stbench.data.describe`).
    """
    from .config import resolve_with_sources
    from .models import count_params

    spec = plan.model_spec
    sources = resolve_with_sources(spec, part.dataset_spec, plan.profile, part.overrides)[3]
    record: RunRecord = {
        "schema_version": SCHEMA_VERSION, "status": "running", "run": plan.run_name, "model": spec.name,
        "family": spec.family, "model_plugin": spec.plugin, "task": part.task.name,
        "dataset": part.dataset_spec.name, "protocol": part.task.protocol, "t_in": part.task.t_in,
        "t_out": part.task.t_out, "shape": list(part.task.shape), "profile": plan.profile, "seed": plan.seed,
        "precision": plan.precision, "overrides": part.overrides, "train": part.train, "hparams": part.hparams,
        "settings_sources": sources, "config_hash": plan.hash, "metric_options": plan.metric_options,
        "evaluation": evaluation, "data": data,
        "image_origin": part.dataset_spec.image_origin, "params": count_params(model), "macs": macs,
        "flops_convention": "MACs at batch 1, full inference rollout", "notes": dict(model.record_notes()),
        "joint": None, "versions": versions(), "hardware": hardware(device), "created": now(),
        "stochastic": bool(model.stochastic), "samples": plan.samples if model.stochastic else 1,
    }
    if plan.joint:
        record["joint"] = {"tasks": [p.task.name for p in plan.parts], "task_count": len(plan.parts),
                           "run": plan.run_name, "config_hash": plan.hash, "train_settings_from": plan.parts[0].task.name}
    return record


def finish_record(record: RunRecord, trained, evaluated, checkpoint: Optional[Path], sample: Optional[Path],
                  started: float) -> RunRecord:
    """Fill in what training (a TrainResult) and evaluation (an EvalResult) produced."""
    seconds = trained.epoch_seconds
    record.update(
        status="ok", epochs=trained.epochs, steps=trained.steps, resumed_from_epoch=trained.resumed_from_epoch,
        train_losses=trained.losses, train_seconds=sum(seconds),
        train_seconds_per_epoch=(sum(seconds) / len(seconds)) if seconds else None,
        inference_seconds=evaluated.inference_seconds, test_sequences=evaluated.sequences,
        fps=evaluated.sequences / evaluated.inference_seconds if evaluated.inference_seconds > 0 else None,
        eval_data_seconds=evaluated.data_seconds, eval_metric_seconds=evaluated.metric_seconds,
        metrics=evaluated.metrics, metric_info=evaluated.info, per_frame=evaluated.per_frame,
        per_clip=evaluated.per_clip, metrics_unavailable=evaluated.unavailable,
        metric_provenance=evaluated.provenance,
        checkpoint=str(checkpoint) if checkpoint is not None and checkpoint.exists() else None,
        sample=str(sample) if sample is not None else None, duration_seconds=time.time() - started,
        selection=trained.selection,
        sampling=evaluated.sampling or {"k": 1, "stochastic": bool(record.get("stochastic"))},
        diagnostics=evaluated.diagnostics,
    )
    return record


def fail_record(record: RunRecord, error: str, started: float) -> RunRecord:
    record.update(status="failed", error=str(error), duration_seconds=time.time() - started)
    return record


def early_failure_record(plan, part, error: str, started: float) -> RunRecord:
    """The record of a run that failed before it had a model to describe (data, build or profiling)."""
    spec = plan.model_spec
    record: RunRecord = {
        "schema_version": SCHEMA_VERSION, "status": "failed", "error": str(error), "run": plan.run_name,
        "model": spec.name, "family": spec.family, "model_plugin": spec.plugin, "task": part.task.name,
        "dataset": part.dataset_spec.name, "protocol": part.task.protocol, "t_in": part.task.t_in,
        "t_out": part.task.t_out, "profile": plan.profile, "seed": plan.seed, "overrides": part.overrides,
        "train": part.train, "hparams": part.hparams, "config_hash": plan.hash, "joint": None,
        "created": now(), "duration_seconds": time.time() - started,
    }
    return record
