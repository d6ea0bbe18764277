"""Leaderboard pictures: per-frame metric curves and prediction strips, as PNG files.

Drawn on matplotlib ``Figure`` objects (Agg), never through pyplot, so no global state or display
is involved and the same input gives the same bytes.
"""
import math
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

PER_FRAME_METRICS = ("mse", "mae", "ssim", "psnr")
MAX_COLUMNS = 10
PNG_METADATA = {"Software": None}  # no matplotlib version in the file: pictures change only with the data


def _curve(values) -> Optional[np.ndarray]:
    """A per-frame list as floats, or None when absent, empty or holding no number at all."""
    if not isinstance(values, (list, tuple)) or not values:
        return None
    try:
        curve = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        return None
    return curve if np.isfinite(curve).any() else None


def plot_per_frame(records: Iterable[Mapping], path, metrics: Sequence[str] = PER_FRAME_METRICS,
                   title: Optional[str] = None) -> Optional[Path]:
    """One subplot per metric (those that some record has), one curve per record, x = predicted
    frame 1..T. A record is a run record: ``label`` (or ``model``) and ``per_frame: {metric: [...]}``;
    records without usable values for a metric are left out of that subplot. Returns the PNG path,
    or None (and writes nothing) when no record has any curve."""
    series, labels = {}, []
    for record in records:
        per_frame = record.get("per_frame") or {}
        label = str(record.get("label") or record.get("model") or "?")
        for metric in metrics:
            curve = _curve(per_frame.get(metric)) if isinstance(per_frame, Mapping) else None
            if curve is not None:
                series.setdefault(metric, []).append((label, curve))
                if label not in labels:
                    labels.append(label)
    shown = [metric for metric in metrics if metric in series]
    if not shown:
        return None
    figure = Figure(figsize=(4.0 * len(shown), 3.4), dpi=100, layout="constrained")
    axes = figure.subplots(1, len(shown), squeeze=False)[0]
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}  # one colour per model in every subplot
    handles = {}
    for ax, metric in zip(axes, shown):
        for label, curve in series[metric]:
            frames = np.arange(1, len(curve) + 1)
            handles[label], = ax.plot(frames, curve, color=colours[label], marker="o" if len(curve) <= 20 else None,
                                      markersize=3)
        ax.set_title(metric.upper())
        ax.set_xlabel("predicted frame")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    figure.legend([handles[label] for label in labels], labels, loc="outside right upper", fontsize="small")
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata=PNG_METADATA)
    return path


def _columns(length: int, limit: int) -> np.ndarray:
    """At most ``limit`` frame indices spread evenly over ``length`` frames, first and last included."""
    if length <= limit:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, limit)).astype(int))


def _rgb(frame: np.ndarray, low: float, high: float) -> np.ndarray:
    """A ``[C, H, W]`` frame in native values as ``[H, W, 3]`` in [0, 1]: RGB as is, one channel in
    grey, more channels as the first one through a colormap."""
    unit = np.clip((np.nan_to_num(frame, nan=low) - low) / ((high - low) or 1.0), 0.0, 1.0)
    if frame.shape[0] == 3:
        return np.moveaxis(unit, 0, -1)
    if frame.shape[0] == 1:
        return np.repeat(unit[0][..., None], 3, axis=-1)
    return colormaps["viridis"](unit[0])[..., :3]


def _load(path) -> Optional[dict]:
    try:
        with np.load(path) as data:
            arrays = {key: np.asarray(data[key], dtype=float) for key in ("inputs", "truth", "pred")}
            bounds = [float(data[key]) if key in data else math.nan for key in ("vmin", "vmax")]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(a.ndim != 4 for a in arrays.values()) or arrays["pred"].shape != arrays["truth"].shape:
        return None
    arrays["bounds"] = bounds
    return arrays


def plot_strip(samples: Sequence[Tuple[str, object]], path, max_columns: int = MAX_COLUMNS,
               title: Optional[str] = None) -> Optional[Path]:
    """A prediction strip of one test clip: rows are the inputs, the ground truth and each model's
    prediction. ``samples`` holds ``(label, npz path)``; each npz has ``inputs [T_in, C, H, W]``,
    ``truth`` and ``pred [T_out, C, H, W]`` in native values and scalars ``vmin`` / ``vmax``
    (NaN when unbounded: the truth's range is used). Inputs and truth come from the first readable
    file; unreadable files are skipped. Long clips show at most ``max_columns`` evenly spread frames.
    Returns the PNG path, or None (and writes nothing) when no file is readable."""
    loaded = [(str(label), data) for label, source in samples if (data := _load(source)) is not None]
    if not loaded:
        return None
    first = loaded[0][1]
    low, high = first["bounds"]
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        low, high = float(np.nanmin(first["truth"])), float(np.nanmax(first["truth"]))
        if not (math.isfinite(low) and math.isfinite(high)):
            low, high = 0.0, 1.0
    in_columns = _columns(len(first["inputs"]), max_columns)
    out_columns = _columns(len(first["truth"]), max_columns)
    rows = [("inputs", first["inputs"], in_columns, "t={}", -len(first["inputs"]) + 1),
            ("ground truth", first["truth"], out_columns, "t=+{}", 1)]
    rows += [(label, data["pred"], out_columns, "t=+{}", 1) for label, data in loaded
             if data["pred"].shape == first["truth"].shape]
    # one mosaic on one axes: drawing dozens of small axes costs seconds, one image milliseconds
    height, width = first["truth"].shape[-2:]
    gap, band = max(1, min(height, width) // 16), max(2, round(0.3 * height))  # band: room for titles
    n_columns = max(len(in_columns), len(out_columns))
    mosaic = np.ones((len(rows) * (height + band), n_columns * (width + gap) - gap, 3))
    figure = Figure(figsize=(1.0 * n_columns, 1.3 * height / width * len(rows)), dpi=100)
    ax = figure.add_axes((0, 0, 1, 1))
    for r, (label, clip, columns, caption, offset) in enumerate(rows):
        top = r * (height + band) + band
        for c, index in enumerate(columns):
            left = c * (width + gap)
            mosaic[top:top + height, left:left + width] = _rgb(clip[index], low, high)
            ax.text(left + width / 2, top - band / 2, caption.format(index + offset), fontsize=6,
                    ha="center", va="center")
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * (height + band) + band + height / 2 for r in range(len(rows))], [row[0] for row in rows],
                  fontsize=8)
    ax.tick_params(length=0)
    ax.set_frame_on(False)
    if title:
        ax.set_title(title, fontsize=9, pad=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata=PNG_METADATA, bbox_inches="tight", pad_inches=0.05)
    return path
