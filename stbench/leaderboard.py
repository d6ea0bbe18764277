"""Run records of one task rendered as markdown tables (one per profile), with their pictures.

A pure function of the records: rows group the records that differ only in seed, cells show
mean +- std over seeds, best / second marks are tested for significance (``stbench.stats``),
every table states its training budget and conventions, and published figures (``published.yaml``)
sit beside the rows they correspond to.
"""
import json
import functools
import math
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import yaml
from tabulate import tabulate

from . import diagnostics, stats
from .errors import UserError
from .files import write_text_atomic
from .records import hardware_label, read_records

# Display info for metric keys of records written before the records carried ``metric_info``, used when
# no installed plugin knows the metric: (higher_is_better, target, label, unit, decimals).
FALLBACK_INFO = {
    "mse": (False, None, "MSE", "", 2), "mae": (False, None, "MAE", "", 2), "rmse": (False, None, "RMSE", "", 2),
    "ssim": (True, None, "SSIM", "", 4), "psnr": (True, None, "PSNR", "dB", 2),
    "lpips": (False, None, "LPIPS", "", 4), "fvd": (False, None, "FVD", "", 2),
    "csi": (True, None, "CSI", "", 4), "pod": (True, None, "POD", "", 4), "sucr": (True, None, "SUCR", "", 4),
    "bias": (False, 1.0, "BIAS", "", 4), "wrmse": (False, None, "WRMSE", "", 2),
    "wmae": (False, None, "WMAE", "", 2), "acc": (True, None, "ACC", "", 4), "nino34": (True, None, "NINO34", "", 4),
}
KEY_SUFFIXES = {"openstl": "OpenSTL"}  # how a key's suffix reads in a column header: ssim_openstl -> SSIM (OpenSTL)
SQUARED_PER_CLIP = {"rmse"}  # reported as sqrt(mean MSE): tested on squared per-clip values (same ordering)
PROFILE_ORDER = {"paper": 0, "quick": 1, "smoke": 2}
NOT_COMPARABLE = {
    "quick": "reduced widths, a few epochs on a CPU",
    "smoke": "tiny models trained for seconds, for tests",
}
UNTRAINED = "untrained"
DASH = "–"  # not computed in this row's records


# ---------------------------------------------------------------- rows: records grouped over seeds

def row_label(record) -> str:
    """Model, its command-line overrides, joint training and, for checkpoint rows, the checkpoint file."""
    label = record["model"]
    if record.get("overrides"):
        label += " (" + ", ".join(f"{k}={v}" for k, v in sorted(record["overrides"].items())) + ")"
    if record.get("joint"):
        label += f" [joint x{record['joint'].get('task_count', '?')}]"
    checkpoint = checkpoint_of(record)
    evaluation = record.get("evaluation") or {}
    trained_on = evaluation.get("trained_on") or {}
    if trained_on.get("task") and trained_on["task"] != record.get("task"):
        label += f" [trained on {trained_on['task']}]"  # generalisation: weights from another task's run
    elif checkpoint is not None:
        label += f" [checkpoint {Path(checkpoint['path']).name}]"
    if int(evaluation.get("frame_interval") or 1) != 1:
        label += f" [frame interval {evaluation['frame_interval']}]"
    return label


def checkpoint_of(record) -> Optional[Dict[str, str]]:
    """{path, sha256, format} of the checkpoint a record was evaluated from (``evaluation.source`` is
    'checkpoint'; the file's details in ``evaluation.checkpoint``, or beside it); None for trained rows."""
    evaluation = record.get("evaluation") or {}
    if evaluation.get("source") != "checkpoint":
        return None
    details = evaluation.get("checkpoint")
    details = dict(details) if isinstance(details, dict) else {"path": details}
    return {key: str(details.get(key) or evaluation.get(key) or "?") for key in ("path", "sha256", "format")}


def budget_of(record) -> Optional[Tuple]:
    """(kind, value, train clips, batch) of a trained record; None for untrained or checkpoint rows.
    Records written before ``budget`` was stored were trained for a number of epochs."""
    if checkpoint_of(record) is not None or not record.get("params"):
        return None
    budget, train = record.get("budget") or {}, record.get("train") or {}
    kind = budget.get("kind", "epochs")
    epochs = budget.get("epochs", record.get("epochs", train.get("epochs")))
    if kind == "epochs" and not epochs:
        return None
    value = budget.get("value", epochs if kind == "epochs" else None)
    clips = budget.get("train_clips", ((record.get("data") or {}).get("train") or {}).get("clips",
                                                                                        train.get("train_samples")))
    return kind, value, clips, budget.get("batch_size", train.get("batch_size"))


def budget_text(budget) -> str:
    if budget is None:
        return "not trained here"
    kind, value, clips, batch = budget
    data = f"{clips} training clips per epoch, batch {batch}"
    if kind == "epochs":
        return f"{value} epoch{'' if value == 1 else 's'} x {clips} training clips, batch {batch}"
    if kind == "seconds":
        return f"{_number(value)} s of training wall-clock time per model ({data}; epochs per row under Epochs)"
    if kind == "macs":
        return f"{_number(value)} training MACs per model ({data}; epochs per row under Epochs)"
    return f"{kind}={value} ({data})"


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _evaluation_key(record):
    """Rows from different checkpoint files never merge; trained and re-evaluated records do."""
    checkpoint = checkpoint_of(record)
    return None if checkpoint is None else (checkpoint["sha256"], checkpoint["path"])


def selected_on(record) -> str:
    """Which weights a record evaluated: ``last`` (the last epoch; records before selection existed),
    ``val`` (best on validation data) or ``test`` (best on test data, OpenSTL's procedure)."""
    return str((record.get("selection") or {}).get("on") or "last")


def selection_text(record) -> str:
    selection = record.get("selection") or {}
    on = selected_on(record)
    if on == "last":
        return "the last epoch's weights" + (" (their moving average)" if selection.get("ema_decay") else "")
    where = "validation data" if on == "val" else "TEST data (OpenSTL's procedure)"
    return (f"the best weights on {where} by {str(selection.get('metric') or 'mse').upper()}, validated every "
            f"{selection.get('every', '?')} epoch(s)")


def group_rows(records) -> List[Dict]:
    """Successful records grouped into rows (same label, budget and evaluation source; seeds differ);
    per seed the newest record counts. Rows whose labels collide get their budget appended."""
    groups: Dict[Tuple, Dict[object, Dict]] = OrderedDict()
    for record in sorted(records, key=lambda r: str(r.get("created", ""))):
        if record.get("status") != "ok":
            continue
        key = (row_label(record), budget_of(record), _evaluation_key(record), selected_on(record))
        groups.setdefault(key, {})[record.get("seed")] = record  # newer replaces older
    rows = []
    for (label, budget, _, on), by_seed in groups.items():
        seeds = sorted(by_seed, key=lambda s: (s is None, s if isinstance(s, (int, float)) else str(s)))
        rows.append({"label": label, "budget": budget, "records": [by_seed[s] for s in seeds], "seeds": seeds,
                     "family": by_seed[seeds[0]].get("family", ""), "model": by_seed[seeds[0]]["model"],
                     "selected_on": on})
    counts = Counter(row["label"] for row in rows)
    for row in rows:
        if counts[row["label"]] > 1:
            row["label"] += f" ({budget_text(row['budget'])})"
    return sorted(rows, key=lambda r: (r["family"] != "baseline", r["label"]))


# ---------------------------------------------------------------- metric display info

def _installed_info(key) -> Optional[Dict]:
    """Display info from an installed MetricSpec (a key 'csi_74' belongs to metric 'csi')."""
    try:
        from . import plugins

        registry = plugins.metrics()
    except Exception:  # a board must render whatever is (not) installed
        return None
    spec = registry.get(key) or registry.get(key.split("_")[0])
    return spec.info() if spec is not None else None


def metric_info(key, records) -> Dict:
    """How to show a metric key: from the records (``metric_info`` as the metric declared it), else the
    installed metric, else a small table of known metrics, else 'lower is better, 4 decimals'."""
    for record in records:
        # a record migrated from schema 1 carries guessed info (4 decimals, the key as label): not used
        info = None if record.get("migrated_from") else (record.get("metric_info") or {}).get(key)
        if info:
            break
    else:
        info = _installed_info(key)
    if not info:
        known = FALLBACK_INFO.get(key) or FALLBACK_INFO.get(key.split("_")[0])
        higher, target, label, unit, decimals = known or (False, None, key.split("_")[0].upper(), "", 4)
        info = {"higher_is_better": higher, "target": target, "label": label, "unit": unit, "decimals": decimals}
    info = dict(info)
    base, _, suffix = key.partition("_")
    label = info.get("label") or base.upper()
    if suffix and label.lower() in (base.lower(), key.lower()):  # 'SSIM' or 'SSIM_OPENSTL' -> 'SSIM (OpenSTL)'
        label = f"{label if label.lower() == base.lower() else base.upper()} ({KEY_SUFFIXES.get(suffix, suffix)})"
    info["label"] = label
    info.setdefault("decimals", 4)
    return info


def header(info) -> str:
    target = info.get("target")
    arrow = f"→{target:g}" if target is not None else ("↑" if info.get("higher_is_better") else "↓")
    unit = f" ({info['unit']})" if info.get("unit") else ""
    return f"{info['label']}{unit} {arrow}"


# ---------------------------------------------------------------- published figures

@functools.lru_cache(maxsize=1)
def published() -> Dict:
    """``published.yaml`` beside this module: sources and figures per task."""
    from .safeload import yaml_file

    return yaml_file(Path(__file__).with_name("published.yaml")) or {}


def _same_overrides(wanted, have) -> bool:
    normal = lambda mapping: {str(k): str(v).lower() for k, v in (mapping or {}).items()}  # noqa: E731
    return normal(wanted) == normal(have)


def published_for(task, row) -> List[Dict]:
    """Published figures for this row's model and overrides on this task."""
    overrides = row["records"][0].get("overrides") or {}
    return [entry for entry in (published().get("tasks") or {}).get(task, [])
            if entry.get("model") == row["model"] and _same_overrides(entry.get("overrides"), overrides)]


# ---------------------------------------------------------------- cells

def _numbers(values) -> List[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _scaled(value, unit) -> Optional[float]:
    return value / unit if _numbers([value]) else None


def _fixed(value, decimals) -> str:
    return f"{value:.{decimals}f}"


def _mean_std(values, decimals) -> str:
    numbers = _numbers(values)
    if not numbers:
        return ""
    text = _fixed(float(np.mean(numbers)), decimals)
    if len(numbers) > 1:
        text += f" ± {_fixed(float(np.std(numbers, ddof=1)), decimals)}"
    return text


def _scale_decimals(values) -> int:
    """Params / FLOPs / times: 1 decimal when the column reaches 10, else 2 (as the papers print them)."""
    numbers = _numbers(values)
    return 1 if numbers and max(abs(v) for v in numbers) >= 10 else 2


def _published(value, decimals: Optional[int] = None) -> str:
    """A published figure with the column's decimals, but never more digits than the paper printed
    (YAML drops trailing zeros, so at least 2): UniSTD's SSIM 0.90 stays 0.90, not 0.9000. Without
    column decimals (Params, FLOPs): 1 decimal from 10 up, else 2."""
    value = float(value)
    printed = len(repr(value).split(".")[1]) if "." in repr(value) and "e" not in repr(value) else 0
    if decimals is None:
        decimals = 1 if abs(value) >= 10 else 2
    return _fixed(value, min(decimals, max(2, printed)))


def _epochs(records) -> str:
    values = sorted({r.get("epochs") for r in records if r.get("epochs") is not None})
    return "/".join(str(v) for v in values)


class Column:
    """One metric column: display info, per-row values over seeds, and its marks."""

    def __init__(self, key, rows, records, ranked=None):
        self.key, self.info = key, metric_info(key, records)
        self.ranked = ranked  # the rows that may be marked (those under the table's budget); None: all
        self.values = [[(r.get("metrics") or {}).get(key) for r in row["records"]] for row in rows]
        self.computed = [[key in (r.get("metrics") or {}) for r in row["records"]] for row in rows]
        self.means = [float(np.mean(_numbers(v))) if _numbers(v) else None for v in self.values]
        self.best, self.second, self.tested, self.separated = set(), set(), False, True
        self._rank(rows)

    def _rank(self, rows):
        if self.info.get("rank") is False:  # a spread over samples: shown, never marked best
            return
        higher, target = bool(self.info.get("higher_is_better")), self.info.get("target")
        present = [i for i, mean in enumerate(self.means)
                   if mean is not None and (self.ranked is None or i in self.ranked)]
        if len(present) < 2:
            return
        point = {i: float(stats.badness(self.means[i], higher, target)) for i in present}
        samples = [self._per_clip(rows[i]) for i in present]
        if all(sample is not None for sample in samples) and len({s.shape[1] for s in samples}) == 1:
            self.tested = True
            means = stats.bootstrap_means(samples)
            if self.key in SQUARED_PER_CLIP:  # resampled on squares: compare sqrt(mean) as reported
                means = np.sqrt(means)
            resampled = stats.badness(means, higher, target)
            best, second = stats.tested_marks([point[i] for i in present], resampled)
            self.best = {present[best]} if best is not None else set()
            self.second = {present[second]} if second is not None else set()
            self.separated = best is not None
        else:
            best, second = stats.marks_by_value([point.get(i) for i in range(len(self.means))])  # only ranked rows
            self.best, self.second = best, second

    def _per_clip(self, row) -> Optional[np.ndarray]:
        matrix = stats.per_clip_matrix([(r.get("per_clip") or {}).get(self.key) for r in row["records"]])
        if matrix is not None and self.key in SQUARED_PER_CLIP:
            matrix = matrix ** 2
        return matrix

    def cell(self, i) -> str:
        decimals = int(self.info.get("decimals", 4))
        numbers = _numbers(self.values[i])
        if not numbers:
            return "n/a" if any(self.computed[i]) else DASH
        text = _mean_std(self.values[i], decimals)
        if len(numbers) < len(self.values[i]):
            text += f" (n={len(numbers)})"
        if i in self.best:
            return f"**{text}**"
        if i in self.second:
            return f"<u>{text}</u>"
        return text

    def published_cell(self, entry) -> str:
        value = (entry.get("metrics") or {}).get(self.key)
        return DASH if value is None else _published(value, int(self.info.get("decimals", 4)))


def _metric_keys(rows, task) -> List[str]:
    """Metric keys of the records, in record order; a published key joins when its metric is on the board
    (the OpenSTL SSIM column beside older records that only have 'ssim')."""
    keys = list(OrderedDict.fromkeys(k for row in rows for r in row["records"] for k in (r.get("metrics") or {})))
    bases = {k.split("_")[0] for k in keys}
    for row in rows:
        for entry in published_for(task, row):
            for key in entry.get("metrics") or {}:
                if key not in keys and key.split("_")[0] in bases:
                    keys.insert(next((i + 1 for i, k in reversed(list(enumerate(keys)))
                                      if k.split("_")[0] == key.split("_")[0]), len(keys)), key)
    return keys


FIXED_HEADERS = ["Model", "Family", "n", "Params (M)", "FLOPs (G)", "Epochs", "Train s/epoch", "Inference s", "FPS"]


def table_cells(task, rows, majority) -> Dict:
    """The board's table as cells: ``headers``, ``body`` (cell texts with the board's marks in markdown:
    ``**best**``, ``<u>second</u>``, † / ‡ after a label, ``↳ *published [n]*`` lines), ``owner`` (per body
    line, the index of the row it belongs to; a published line belongs to the row above it), ``published``
    (per body line, whether it is a published figure), its metric ``columns`` and the ``sources`` cited."""
    all_records = [r for row in rows for r in row["records"]]
    ranked = {i for i, row in enumerate(rows) if (row["budget"] is None or majority is None or row["budget"] == majority)
              and row.get("selected_on") != "test"}
    columns = [Column(key, rows, all_records, ranked) for key in _metric_keys(rows, task)]
    params = [[_scaled(r.get("params"), 1e6) for r in row["records"]] for row in rows]
    macs = [[_scaled(r.get("macs"), 1e9) for r in row["records"]] for row in rows]
    per_epoch = [[r.get("train_seconds_per_epoch") for r in row["records"]] for row in rows]
    inference = [[r.get("inference_seconds") for r in row["records"]] for row in rows]
    fps = [[r.get("fps") for r in row["records"]] for row in rows]
    decimals = [_scale_decimals(sum(column, [])) for column in (params, macs, per_epoch, inference, fps)]
    mean = lambda values, d: _fixed(float(np.mean(_numbers(values))), d) if _numbers(values) else DASH  # noqa: E731
    body, owner, is_published, sources = [], [], [], []
    for i, row in enumerate(rows):
        label = row["label"]
        if row["budget"] is not None and majority is not None and row["budget"] != majority:
            label += " †"
        if row.get("selected_on") == "test":
            label += " ‡"
        flags = row_flags(row)[0]
        if flags:
            label += f" [{', '.join(flags)}]"
        body.append([label, row["family"], str(len(row["records"])), mean(params[i], decimals[0]),
                     mean(macs[i], decimals[1]), _epochs(row["records"]),
                     mean(per_epoch[i], decimals[2]) if _numbers(per_epoch[i]) else DASH,
                     mean(inference[i], decimals[3]), mean(fps[i], decimals[4])]
                    + [column.cell(i) for column in columns])
        owner.append(i)
        is_published.append(False)
        for entry in published_for(task, row):
            if entry["source"] not in sources:
                sources.append(entry["source"])
            number = sources.index(entry["source"]) + 1
            body.append([f"↳ *published [{number}]*", "", "",
                         DASH if entry.get("params_m") is None else _published(entry["params_m"]),
                         DASH if entry.get("flops_g") is None else _published(entry["flops_g"]),
                         "", "", "", ""] + [column.published_cell(entry) for column in columns])
            owner.append(i)
            is_published.append(True)
    headers = FIXED_HEADERS + [header(column.info) for column in columns]
    align = ["left", "left"] + ["right"] * (len(headers) - 2)
    return {"headers": headers, "body": body, "align": align, "owner": owner, "published": is_published,
            "columns": columns, "sources": sources}


def table(task, rows, majority) -> Tuple[str, List[Column], List[str]]:
    """The markdown table, its metric columns and the published sources cited in it (in order)."""
    cells = table_cells(task, rows, majority)
    text = tabulate(cells["body"], headers=cells["headers"], tablefmt="pipe", colalign=cells["align"],
                    disable_numparse=True)
    return text, cells["columns"], cells["sources"]


# ---------------------------------------------------------------- one section per profile

def _distinct(values) -> str:
    return ", ".join(OrderedDict.fromkeys(str(v) for v in values if v not in (None, "")))


def _hardware(records, label_of) -> str:
    """The hardware label; with several, which rows ran on which (timings compare only within one)."""
    groups = OrderedDict()
    for r in records:
        names = groups.setdefault(hardware_label(r), [])
        if label_of(r) not in names:
            names.append(label_of(r))
    if len(groups) == 1:
        return next(iter(groups))
    return "timings compare only within a group; " + "; ".join(f"{label}: {', '.join(names)}"
                                                          for label, names in groups.items())


def _majority_budget(rows):
    votes = Counter(row["budget"] for row in rows if row["budget"] is not None)
    return votes.most_common(1)[0][0] if votes else None


def _marks_line(columns, rows) -> str:
    tested = [c for c in columns if c.tested]
    untested = [c for c in columns if not c.tested and sum(m is not None for m in c.means) > 1]
    clips = {len((r.get("per_clip") or {}).get(c.key) or []) for c in tested for row in rows for r in row["records"]}
    clips.discard(0)  # rows without per-clip values (unranked, or older records) are not in the test
    parts = []
    if tested:
        parts.append(f"**best** and <u>second</u> only where the row is better than every row ranked below it "
                     f"by a {stats.METHOD} ({'/'.join(str(n) for n in sorted(clips))} test clips; "
                     f"stbench.stats); tested: {', '.join(c.info['label'] for c in tested)}")
        unseparated = [c.info["label"] for c in tested if not c.separated]
        if unseparated:
            parts.append(f"no mark in {', '.join(unseparated)}: the leading row is not significantly better "
                         "than every other")
    if untested:
        parts.append(f"{', '.join(c.info['label'] for c in untested)}: marked by mean alone, not tested for "
                     "significance (the records hold no per-clip values: written before stbench stored them, or "
                     "a row lacks them or scored other clips)")
    return "Marks: " + "; ".join(parts) + "." if parts else ""


def _ssim_line(columns, records) -> str:
    keys = {c.key for c in columns}
    if not keys & {"ssim", "ssim_openstl"}:
        return ""
    ranges = _distinct((r.get("metric_options") or {}).get("ssim_data_range") for r in records if "ssim" in
                       (r.get("metrics") or {}))
    own = (f"data_range {ranges} (set with --metric-option ssim_data_range"
           + (", on some rows only)" if any("ssim_data_range" not in (r.get("metric_options") or {})
                                            for r in records if "ssim" in (r.get("metrics") or {})) else ")")
           if ranges else "data_range = the dataset's value range (1.0 for data in [0, 1]), as scikit-image "
                          "requires it today")
    text = f"SSIM conventions: `SSIM` uses {own}"
    if "ssim_openstl" in keys:
        text += ("; `SSIM (OpenSTL)` uses twice the value range (2.0 for [0, 1] data), the data_range that "
                 "scikit-image <= 0.19 assumed for float frames and that OpenSTL's and the papers' tables used: "
                 "it is the one to read beside published SSIM (same predictions, only the constants differ)")
        if any("ssim" in (r.get("metrics") or {}) and "ssim_openstl" not in (r.get("metrics") or {})
               for r in records):
            text += f"; {DASH} where a record predates it"
    return text + "."


def _notes(rows, majority) -> List[str]:
    notes = OrderedDict()
    for row in rows:
        if row["budget"] is not None and majority is not None and row["budget"] != majority:
            notes[f"† {row['label']}: trained under another budget: {budget_text(row['budget'])}."] = None
    for row in rows:
        for note in row_flags(row)[1]:
            notes[note] = None
    for row in rows:
        if row.get("selected_on") == "test":
            notes[f"‡ {row['label']}: its weights were selected on the TEST data (the epoch with the best test "
                  f"score, OpenSTL's procedure), so its scores are optimistic; it gets no best / second mark."] = None
    for row in rows:
        for r in row["records"]:
            seed = f" (seed {r.get('seed')})" if len(row["records"]) > 1 else ""
            for metric, reason in (r.get("metrics_unavailable") or {}).items():
                notes[f"{metric} n/a for {row['label']}{seed}: {reason}"] = None
            for key, value in (r.get("notes") or {}).items():
                notes[f"{row['label']}: {key}: {value}"] = None
            checkpoint = checkpoint_of(r)
            if checkpoint is not None:
                notes[f"{row['label']}: evaluated from checkpoint {checkpoint['path']} (sha256 "
                      f"{checkpoint['sha256']}, format {checkpoint['format']}), not trained "
                      "here."] = None
    files = OrderedDict()
    for row in rows:
        for r in row["records"]:
            for metric, source in (r.get("metric_provenance") or {}).items():
                if isinstance(source, dict):
                    what = f"{metric}: {source.get('file', '?')} (sha256 {source.get('sha256', '?')})"
                    names = files.setdefault(what, [])
                    if row["label"] not in names:
                        names.append(row["label"])
    for what, names in files.items():
        notes[f"weights behind {what}: {', '.join(names)}."] = None
    return list(notes)


def lead_time_cells(rows, columns) -> List[Tuple[List[str], List[List[str]]]]:
    """Per lead time (predicted frame), each metric's mean over a row's seeds: PredBench's ``by_frame`` view,
    one (headers, body) per metric that records per-frame values."""
    tables = []
    for column in columns:
        if column.info.get("rank") is False:
            continue
        curves = [[(r.get("per_frame") or {}).get(column.key) for r in row["records"]] for row in rows]
        frames = max((len(c) for per_row in curves for c in per_row if c), default=0)
        if frames < 2:
            continue
        decimals = int(column.info.get("decimals", 4))
        body = []
        for row, per_row in zip(rows, curves):
            usable = [c for c in per_row if c and len(c) == frames]
            if not usable:
                continue
            means = np.mean(np.asarray(usable, dtype=np.float64), axis=0)
            body.append([row["label"]] + [_fixed(float(v), decimals) for v in means])
        if body:
            tables.append(([f"{header(column.info)} by lead time"] + [f"t+{i + 1}" for i in range(frames)], body))
    return tables


LEAD_TIME_SUMMARY = "Every metric by lead time (predicted frame; mean over seeds)"


def lead_time_tables(rows, columns) -> List[str]:
    """The lead-time tables as markdown, folded under a details block."""
    lines = []
    for headers, body in lead_time_cells(rows, columns):
        lines += ["", tabulate(body, headers=headers, tablefmt="pipe",
                               colalign=["left"] + ["right"] * (len(headers) - 1), disable_numparse=True)]
    if not lines:
        return []
    return ["", f"<details><summary>{LEAD_TIME_SUMMARY}</summary>"] + lines + ["", "</details>"]


def section_parts(task, profile, rows) -> Dict:
    """What a profile's section says, in parts both the markdown board and the results site render: the
    ``caution`` (not comparable with published figures; None for ``paper``), the ``facts`` (task, data,
    budget, weights, seeds, marks, hardware, conventions), the table ``cells`` (:func:`table_cells`), the
    ``lead_time`` tables, the ``notes`` and the published ``sources`` cited (one line each). Texts carry
    the board's inline markdown (backticks, ``**bold**``, ``*italic*``, ``<u>second</u>``)."""
    records = [r for row in rows for r in row["records"]]
    first = records[0]
    majority = _majority_budget(rows)
    cells = table_cells(task, rows, majority)
    columns, sources = cells["columns"], cells["sources"]
    tests = [(r.get("data") or {}).get("test") or {} for r in records]
    test_sources = _distinct((f"{t['source']} ({t.get('clips', '?')} clips)" if t.get("source")
                              else f"{t.get('clips', '?')} clips") for t in tests if t)
    seeds = _distinct(s for row in rows for s in row["seeds"])
    caution = None
    if profile != "paper":
        why = NOT_COMPARABLE.get(profile, "not the published configurations and schedules")
        caution = (f"**Not comparable with published figures**: the `{profile}` profile uses {why}. The "
                   "↳ published rows are the papers' full-size models after their full schedules, shown for scale.")
    lines = [
        f"Task: `{task}`, {first.get('protocol', '?')} protocol ({first.get('t_in', '?')} frames observed, "
        f"{first.get('t_out', '?')} predicted); dataset `{first.get('dataset', '?')}`.",
        f"Test data: {test_sources}.",
        f"Budget: {budget_text(majority) if majority else 'no row was trained here'}"
        + ("; † marks rows trained under another budget (see the notes); they get no best / second mark." if any(
            row["budget"] not in (None, majority) for row in rows) else "; every trained row had it."),
        f"Weights evaluated: {_distinct(selection_text(r) for r in records)}"
        + ("; ‡ marks rows selected on test data (see the notes)." if any(
            row.get("selected_on") == "test" for row in rows) else "."),
    ] + ([f"Flags: [collapsed] marks a row whose predictions are near-constant frames (spatial std below "
          f"{diagnostics.COLLAPSED_BELOW:.0%} of the targets'), [copying] one that stays by the last observed frame "
          f"(closer to it than {diagnostics.COPYING_BELOW:.0%} of the targets' distance: persistence in effect); "
          "such rows can score well on some metrics (a blank frame on mostly-black data) and keep their marks; "
          "the numbers are in the notes."] if any(row_flags(row)[0] for row in rows) else []) + [
        f"Seeds: {seeds}; cells show the mean ± std (sample std) over the n seeds of a row, the newest record "
        "per seed; per-seed records stay under runs/.",
    ]
    sampled = sorted({int((r.get("sampling") or {}).get("k", 1)) for r in records} - {1})
    if sampled:
        lines.append(f"Sampling: stochastic rows draw K = {_distinct(sampled)} predictions per test clip (torch's "
                     "generator seeded from the run seed per sample and batch, recorded); their main columns are "
                     "best-of-K per clip (the convention of the SV2P / SAVP / SVG tables), *(mean of K)* columns the "
                     "mean over samples and *(spread)* columns the standard deviation over samples per clip, averaged "
                     "over clips; set-level metrics (FVD, CSI) report the mean over samples; deterministic rows are "
                     "K = 1.")
    marks = _marks_line(columns, rows)
    if marks:
        lines.append(marks)
    ssim = _ssim_line(columns, records)
    if ssim:
        lines.append(ssim)
    lines += [
        f"Hardware: {_hardware(records, lambda r: row_label(r))}. Versions: stbench "
        f"{_distinct((r.get('versions') or {}).get('stbench') for r in records)}, torch "
        f"{_distinct((r.get('versions') or {}).get('torch') for r in records)}.",
        "Params (M) counts what exists. FLOPs (G) are multiply-accumulates (MACs, the fvcore convention of "
        "the published tables) at batch 1 over the whole inference rollout. Inference s: forward time over "
        "the test set; FPS: test sequences per second. Timings are means over seeds.",
        "MSE / MAE: averaged over clips and frames, summed over C x H x W per frame (per-pixel mean for "
        "spatially normalised data); SSIM / PSNR on predictions clipped to the data range. "
        f"{DASH}: not computed in that row's records; n/a: computed but unavailable (see the notes).",
    ]
    cited = []
    catalogue = published().get("sources") or {}
    for number, key in enumerate(sources, 1):
        source = catalogue.get(key) or {}
        ssim = ("SSIM in OpenSTL's convention" if source.get("ssim") == "openstl"
                else "SSIM convention not stated by the paper; shown in the SSIM (OpenSTL) column")
        cited.append(f"[{number}] {source.get('citation', key)}: {source.get('setting', '')}; {ssim}"
                     + (f"; {source['note']}" if source.get("note") else "") + ".")
    return {"caution": caution, "facts": lines, "cells": cells, "lead_time": lead_time_cells(rows, columns),
            "notes": _notes(rows, majority), "sources": cited}


def section(task, profile, rows, figures: Dict[str, str]) -> str:
    parts = section_parts(task, profile, rows)
    cells = parts["cells"]
    lines = [f"## Profile `{profile}`", ""]
    if parts["caution"]:
        lines += [f"> {parts['caution']}", ""]
    lines += [f"- {fact}" for fact in parts["facts"]]
    lines += ["", tabulate(cells["body"], headers=cells["headers"], tablefmt="pipe", colalign=cells["align"],
                           disable_numparse=True)]
    lines += lead_time_tables(rows, cells["columns"])
    if parts["notes"]:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in parts["notes"]]
    if parts["sources"]:
        lines += ["", "Published figures:", ""] + [f"- {line}" for line in parts["sources"]]
    for title, path in figures.items():
        lines += ["", f"![{title}]({path})"]
    return "\n".join(lines)


# ---------------------------------------------------------------- pictures and the whole board

def record_diagnostics(record) -> Optional[Dict]:
    """The record's prediction diagnostics (stbench.diagnostics); for a record written before evaluations kept
    them, those of its stored sample clip."""
    if record.get("diagnostics"):
        return record["diagnostics"]
    path = _sample_path(record)
    if path is None:
        return None
    from .safeload import checked_npz_member

    try:
        sample = {key: checked_npz_member(path, key) for key in ("inputs", "truth", "pred")}
    except (KeyError, UserError):
        return None
    return diagnostics.from_sample(sample)


def row_flags(row) -> Tuple[List[str], List[str]]:
    """A row's degenerate-prediction flags (any seed's) and a note with the numbers of its first flagged seed."""
    flags, flagged, first = [], [], None
    for record in row["records"]:
        found = record_diagnostics(record)
        if not found or not found.get("flags"):
            continue
        flags += [f for f in found["flags"] if f not in flags]
        flagged.append(str(record.get("seed")))
        first = first or (record, found)
    if first is None:
        return [], []
    seeds = ""
    if len(row["records"]) > 1:
        seeds = (f" (seeds {', '.join(flagged)} flagged; numbers of seed {first[0].get('seed')})" if len(flagged) > 1
                 else f" (seed {flagged[0]} of {len(row['records'])})")
    return flags, [f"[{', '.join(flags)}] {row['label']}{seeds}: {diagnostics.describe(first[1])}."]


def _sample_path(record) -> Optional[Path]:
    """The record's sample clip: as written, else relative to the output folder the record lives in, else
    beside the record (a copied or moved runs/ folder)."""
    sample = record.get("sample")
    if not sample:
        return None
    candidates = [Path(sample)]
    if record.get("_path"):
        home = Path(record["_path"]).parent
        candidates += [home.parents[2] / sample if len(home.parents) > 2 else Path(sample), home / Path(sample).name]
    return next((c for c in candidates if c.is_file()), None)


def row_curves(row) -> Dict:
    """A row for the per-frame plot: the mean curve over seeds and its std."""
    curves, spread = {}, {}
    keys = OrderedDict.fromkeys(k for r in row["records"] for k in (r.get("per_frame") or {}))
    for key in keys:
        series = [(r.get("per_frame") or {}).get(key) for r in row["records"]]
        matrix = stats.per_clip_matrix(series)  # same shape rule: every seed complete and equally long
        if matrix is not None:
            curves[key] = matrix.mean(axis=0).tolist()
            if len(matrix) > 1:
                spread[key] = matrix.std(axis=0, ddof=1).tolist()
        elif series and isinstance(series[-1], list):
            curves[key] = series[-1]
    return {"label": row["label"], "model": row["model"], "family": row["family"], "per_frame": curves,
            "per_frame_std": spread, "metric_info": {k: metric_info(k, row["records"]) for k in curves}}


def _figures(board_dir: Path, task: str, profile: str, rows) -> Dict[str, str]:
    """Per-frame curves, a prediction strip and an animated sample clip beside the leaderboard."""
    try:
        from . import figures
    except ImportError:  # matplotlib missing: a board without pictures is still a board
        return {}
    made = {}
    stem = board_dir / f"{task}.{profile}"
    records = [r for row in rows for r in row["records"]]
    origin = next((r["image_origin"] for r in records if r.get("image_origin") in ("upper", "lower")), "upper")
    curves = [row_curves(row) for row in rows]
    frames = Path(f"{stem}.per-frame.png")
    if any(c["per_frame"] for c in curves) and figures.plot_per_frame(curves, frames, title=f"{task} ({profile})"):
        made["per-frame metrics"] = frames.name
    samples = [(row["label"], path) for row in rows if (path := _sample_path(row["records"][0])) is not None]
    strip, clip = Path(f"{stem}.strip.png"), Path(f"{stem}.sample.gif")
    if samples and figures.plot_strip(samples, strip, image_origin=origin):
        made["prediction strip"] = strip.name
    if samples and figures.animate_samples(samples, clip, image_origin=origin):
        made["sample clip, animated: ground truth and each model side by side"] = clip.name
    return made


def render(task: str, records, out_dir: Path, pictures: bool = True) -> str:
    """The markdown board of one task; pictures (unless ``pictures=False``) are written into ``out_dir``."""
    out_dir = Path(out_dir)
    by_profile: Dict[str, List[Dict]] = OrderedDict()
    for record in sorted(records, key=lambda r: PROFILE_ORDER.get(r.get("profile"), 9)):
        by_profile.setdefault(record.get("profile", "?"), []).append(record)
    parts = [f"# Leaderboard: {task}", "",
             "Generated by `stbench leaderboard` from the run records; profiles are never mixed in one table."]
    for profile, group in by_profile.items():
        rows = group_rows(group)
        if rows:
            made = _figures(out_dir, task, profile, rows) if pictures else {}
            parts += ["", section(task, profile, rows, made)]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        parts += ["", "Failed runs (not ranked):", ""]
        parts += [f"- {row_label(r)} ({r.get('profile')}, seed {r.get('seed')}): {r.get('error', '')}"
                  for r in failed]
    return "\n".join(parts) + "\n"


def write_leaderboards(out_dir, tasks=None, board_dir=None) -> List[Path]:
    """Regenerate ``<board_dir>/<task>.md`` (default ``out_dir/leaderboards``) from ``out_dir/runs``
    for the given tasks (default: every task with records)."""
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    by_task: Dict[str, List[Dict]] = OrderedDict()
    for record in records:
        by_task.setdefault(record["task"], []).append(record)
    board_dir = Path(board_dir) if board_dir is not None else out_dir / "leaderboards"
    written = []
    for task in (tasks or by_task):
        if task not in by_task:
            continue
        board_dir.mkdir(parents=True, exist_ok=True)
        written.append(write_text_atomic(board_dir / f"{task}.md", render(task, by_task[task], board_dir)))
    return written


# the request book lives in a folder of its own: the boards' stale-temporary sweep must never see its writes
REQUESTS = Path(".requests") / "book.json"


def _requests(boards: Path, change):
    """Read and change the boards' request book (``{counter, served, tasks}``) under a lock held only for that."""
    from .files import locked

    path = boards / REQUESTS
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.with_name(".lock")):
        try:
            book = json.loads(path.read_text()) if path.exists() else {}
            book = {"counter": int(book["counter"]), "served": int(book["served"]), "tasks": list(book["tasks"])}
        except (OSError, ValueError, KeyError, TypeError):
            book = None  # absent or damaged: start a new book
        fresh = book is None
        book = book or {"counter": 0, "served": 0, "tasks": []}
        result = change(book)
        if result is not None or fresh:
            write_text_atomic(path, json.dumps(book))
        return book if result is None else result


def refresh_leaderboards(out_dir, tasks=None, poll: float = 0.02) -> List[Path]:
    """Regenerate boards of ``out_dir`` so that the last board written holds every finished record, and a caller
    waits at most for the board write in progress and one more.

    Each call files a numbered request (its tasks, or all) in ``leaderboards/.requests/book.json``. Whoever holds the
    boards' lock takes every request filed so far, renders them from the records as they are then, and marks
    them served. A caller returns as soon as its request is served, by itself or by any later render (it
    polls, so an unfair lock cannot starve it). A record written before its request is therefore on the next
    board rendered, and many refreshers beside a run never hold the run up longer than two board writes. A
    disk that refuses is one line. Returns the boards of the requested tasks."""
    import time

    from .errors import UserError
    from .files import remove_stale_temporaries, try_locked

    out_dir = Path(out_dir)
    boards = out_dir / "leaderboards"
    requested = [None] if tasks is None else list(tasks)

    def file_request(book):
        book["counter"] += 1
        book["tasks"] += requested
        return book["counter"]

    def take(book):
        taken = (book["counter"], list(book["tasks"]))
        book["tasks"] = []
        return taken

    try:
        boards.mkdir(parents=True, exist_ok=True)
        number = _requests(boards, file_request)
        while _requests(boards, lambda book: None)["served"] < number:
            with try_locked(boards / ".lock") as held:
                if held:
                    remove_stale_temporaries(boards)
                    upto, pending = _requests(boards, take)
                    if pending:
                        write_leaderboards(out_dir, None if None in pending else sorted(set(pending)))
                    _requests(boards, lambda book: book.update(served=max(book["served"], upto)) or upto)
                    break
            time.sleep(poll)
    except OSError as error:
        from .files import as_disk_full

        full = as_disk_full(error, boards)
        if full is not None:
            raise full from None
        raise UserError(f"cannot write the leaderboards under {out_dir.resolve()}: "
                        f"{error.strerror or error}; free space or choose another --out") from None
    names = sorted({r["task"] for r in read_records(out_dir)}) if tasks is None else list(tasks)
    return [boards / f"{task}.md" for task in names if (boards / f"{task}.md").exists()]
