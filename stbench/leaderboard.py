"""Run records of one task rendered as markdown tables (one per profile), with their pictures."""
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List

import pandas as pd

from . import plugins
from .records import hardware_label, read_records, write_text_atomic

HIGHER_IS_BETTER_FALLBACK = {"ssim", "psnr", "csi", "pod", "sucr", "acc", "nino34"}
COLUMNS_FIXED = ["Model", "Family", "Params (M)", "FLOPs (G)", "Epochs", "Train s/epoch", "Inference s", "FPS"]


def row_label(record) -> str:
    label = record["model"]
    if record.get("overrides"):
        label += " (" + ", ".join(f"{k}={v}" for k, v in sorted(record["overrides"].items())) + ")"
    if record.get("joint"):
        label += f" [joint x{record['joint'].get('task_count', '?')}]"
    return label


def latest_per_row(records) -> List[Dict]:
    """The newest successful record per (model + overrides + joint) label."""
    chosen: Dict[str, Dict] = {}
    for record in sorted(records, key=lambda r: r.get("created", "")):
        if record.get("status") == "ok":
            chosen[row_label(record)] = record
    return sorted(chosen.values(), key=lambda r: (r.get("family") != "baseline", row_label(r)))


def _spec(metric):
    """The spec of a reported key: 'csi_74' belongs to metric 'csi'."""
    return plugins.metrics().get(metric) or plugins.metrics().get(metric.split("_")[0])


def higher_is_better(metric) -> bool:
    spec = _spec(metric)
    if spec is not None:
        return spec.higher_is_better
    return metric.split("_")[0] in HIGHER_IS_BETTER_FALLBACK


def target_of(metric):
    spec = _spec(metric)
    return getattr(spec, "target", None) if spec is not None else None


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, str):
        return value
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _mark(values, higher, target=None):
    """The best and second-best values ('**' and '<u>'): highest, lowest, or nearest the target."""
    present = {v for v in values if isinstance(v, (int, float))}
    if target is not None:
        present = sorted(present, key=lambda v: abs(v - target))
    else:
        present = sorted(present, reverse=higher)
    best = present[0] if present else None
    second = present[1] if len(present) > 1 else None
    return best, second


def table(records) -> str:
    metric_names = list(OrderedDict.fromkeys(k for r in records for k in (r.get("metrics") or {})))
    rows = []
    for r in records:
        per_epoch = r.get("train_seconds_per_epoch")
        rows.append([row_label(r), r.get("family", ""), _fmt(r["params"] / 1e6), _fmt(r["macs"] / 1e9),
                     r.get("epochs", 0), _fmt(per_epoch) if per_epoch else "-", _fmt(r.get("inference_seconds")),
                     _fmt(r.get("fps"))] + [None] * len(metric_names))
    headers = list(COLUMNS_FIXED)
    for j, name in enumerate(metric_names):
        higher, target = higher_is_better(name), target_of(name)
        arrow = f"→{target:g}" if target is not None else ("↑" if higher else "↓")
        headers.append(f"{name.upper()} {arrow}")
        values = [(r.get("metrics") or {}).get(name) for r in records]
        numeric = [v if isinstance(v, (int, float)) else None for v in values]
        best, second = _mark(numeric, higher, target)
        for i, value in enumerate(values):
            text = _fmt(value)
            if value is not None and value == best and len(records) > 1:
                text = f"**{text}**"
            elif value is not None and value == second:
                text = f"<u>{text}</u>"
            rows[i][len(COLUMNS_FIXED) + j] = text
    frame = pd.DataFrame(rows, columns=headers)
    return frame.to_markdown(index=False, disable_numparse=True)


def _distinct(values) -> str:
    return ", ".join(OrderedDict.fromkeys(str(v) for v in values if v not in (None, "")))


def _hardware(records) -> str:
    """The hardware label; with several, which rows ran on which (timings compare only within one)."""
    rows = OrderedDict()
    for r in records:
        rows.setdefault(hardware_label(r), []).append(row_label(r))
    if len(rows) == 1:
        return next(iter(rows))
    return "timings compare only within a group; " + "; ".join(f"{label}: {', '.join(names)}"
                                                          for label, names in rows.items())


def section(task, profile, records, figures: Dict[str, str]) -> str:
    first = records[0]
    test_sources = _distinct(f"{r['data']['test']['source']} ({r['data']['test']['clips']} clips)" for r in records)
    lines = [
        f"## Profile `{profile}`",
        "",
        f"- Task: `{task}`, {first['protocol']} protocol ({first['t_in']} frames observed, {first['t_out']} "
        f"predicted); dataset `{first['dataset']}`.",
        f"- Test data: {test_sources}.",
        f"- Training: epochs per row; train clips: {_distinct(r['data']['train']['clips'] for r in records)}; "
        f"seeds: {_distinct(r['seed'] for r in records)}.",
        f"- Hardware: {_hardware(records)}. Versions: stbench "
        f"{_distinct(r['versions']['stbench'] for r in records)}, torch "
        f"{_distinct(r['versions']['torch'] for r in records)}.",
    ]
    lines += [
        "- Params (M) counts what exists. FLOPs (G) are multiply-accumulates (MACs, the fvcore convention of "
        "the published tables) at batch 1 over the whole inference rollout. Inference s: forward time over "
        "the test set; FPS: test sequences per second.",
        "- MSE / MAE: averaged over clips and frames, summed over C x H x W per frame (per-pixel mean for "
        "spatially normalised data); SSIM / PSNR on predictions clipped to the data range.",
        "",
        table(records),
    ]
    notes = OrderedDict()
    for r in records:
        for metric, reason in (r.get("metrics_unavailable") or {}).items():
            notes[f"{metric} n/a for {row_label(r)}: {reason}"] = None
        for key, value in (r.get("notes") or {}).items():
            notes[f"{row_label(r)}: {key}: {value}"] = None
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    for title, path in figures.items():
        lines += ["", f"![{title}]({path})"]
    return "\n".join(lines)


def _figures(out_dir: Path, task: str, profile: str, records) -> Dict[str, str]:
    """Per-frame curves and a prediction strip beside the leaderboard, when the figures module is there."""
    try:
        from . import figures
    except ImportError:
        return {}
    made = {}
    frames = out_dir / f"{task}.{profile}.per-frame.png"
    strip = out_dir / f"{task}.{profile}.strip.png"
    rows = [dict(r, label=row_label(r)) for r in records]
    if any(r.get("per_frame") for r in rows) and figures.plot_per_frame(rows, frames):
        made["per-frame metrics"] = frames.name
    samples = [(row_label(r), r["sample"]) for r in records if r.get("sample") and Path(r["sample"]).exists()]
    if samples and figures.plot_strip(samples, strip):
        made["prediction strip"] = strip.name
    return made


def render(task: str, records, out_dir: Path) -> str:
    by_profile: Dict[str, List[Dict]] = OrderedDict()
    order = {"paper": 0, "quick": 1, "smoke": 2}
    for record in sorted(records, key=lambda r: order.get(r.get("profile"), 9)):
        by_profile.setdefault(record["profile"], []).append(record)
    parts = [f"# Leaderboard: {task}", "",
             "Generated by `stbench leaderboard` from the run records; profiles are never mixed in one table."]
    for profile, group in by_profile.items():
        rows = latest_per_row(group)
        if rows:
            parts += ["", section(task, profile, rows, _figures(out_dir, task, profile, rows))]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        parts += ["", "Failed runs (not ranked):", ""]
        parts += [f"- {row_label(r)} ({r['profile']}): {r.get('error', '')}" for r in failed]
    return "\n".join(parts) + "\n"


def write_leaderboards(out_dir, tasks=None) -> List[Path]:
    """Regenerate ``out_dir/leaderboards/<task>.md`` for the given tasks (default: every task with records)."""
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    by_task: Dict[str, List[Dict]] = OrderedDict()
    for record in records:
        by_task.setdefault(record["task"], []).append(record)
    board_dir = out_dir / "leaderboards"
    written = []
    for task in (tasks or by_task):
        if task not in by_task:
            continue
        board_dir.mkdir(parents=True, exist_ok=True)
        written.append(write_text_atomic(board_dir / f"{task}.md", render(task, by_task[task], board_dir)))
    return written
