"""Leaderboard pictures: per-frame metric curves and prediction strips (PNG), sample clips (animated GIF).

Drawn on matplotlib ``Figure`` objects (Agg), never through pyplot, and GIFs with Pillow directly, so
no global state or display is involved and the same input gives the same bytes. Every file is
written to a temporary name in its folder and moved into place, so a reader never sees half a file.
"""
import math
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .files import atomic_path

PER_FRAME_METRICS = ("mse", "mae", "ssim", "psnr")
MAX_COLUMNS = 10
PNG_METADATA = {"Software": None}  # no matplotlib version in the file: pictures change only with the data
# Direction and unit of the usual metrics when a record does not say (records before metric_info).
KNOWN = {"mse": (False, ""), "mae": (False, ""), "rmse": (False, ""), "ssim": (True, ""), "psnr": (True, "dB"),
         "lpips": (False, ""), "fvd": (False, "")}
# 20 colours (tab10, then tab20's light shades), 11 markers and 4 line styles: with lengths 20 and 11
# coprime, colour and marker together differ for 220 models, and the line style changes every 20.
COLOURS = [colormaps["tab10"](i) for i in range(10)] + [colormaps["tab20"](2 * i + 1) for i in range(10)]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]
LINE_STYLES = ["-", "--", ":", "-."]
GIF_FRAME_MS = 250
GIF_HOLD_MS = 1200  # the last frame stays a little longer before the loop restarts
GIF_MAX_COLUMNS = 6
GIF_MIN_SIDE = 128  # small frames (64x64) are enlarged by an integer factor to at least this height


def style(index: int) -> dict:
    """Colour, marker and line style of the ``index``-th model: distinct for every model of a board."""
    return {"color": COLOURS[index % len(COLOURS)], "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINE_STYLES[(index // len(COLOURS)) % len(LINE_STYLES)]}


def _curve(values) -> Optional[np.ndarray]:
    """A per-frame list as floats, or None when absent, empty or holding no number at all."""
    if not isinstance(values, (list, tuple)) or not values:
        return None
    try:
        curve = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        return None
    return curve if np.isfinite(curve).any() else None


def _axis_title(metric: str, records: Sequence[Mapping]) -> Tuple[str, str]:
    """'MSE ↓' / 'PSNR (dB) ↑' and the y-axis label, from the records' metric_info or the known metrics."""
    info = next((r["metric_info"][metric] for r in records
                 if isinstance(r.get("metric_info"), Mapping) and isinstance(r["metric_info"].get(metric), Mapping)),
                None) or {}
    higher, unit = KNOWN.get(metric, (False, ""))
    higher = info.get("higher_is_better", higher)
    unit = info.get("unit", unit) or ""
    label = info.get("label") or metric.upper()
    target = info.get("target")
    arrow = f"→{target:g}" if target is not None else ("↑ better" if higher else "↓ better")
    return f"{label} ({arrow})", f"{label} ({unit})" if unit else label


def plot_per_frame(records: Iterable[Mapping], path, metrics: Sequence[str] = PER_FRAME_METRICS,
                   title: Optional[str] = None) -> Optional[Path]:
    """One subplot per metric (those that some record has), one curve per record, x = predicted
    frame 1..T. A record is a run record or a leaderboard row: ``label`` (or ``model``),
    ``per_frame: {metric: [...]}``, optional ``per_frame_std`` (a band of +- one std over seeds) and
    ``metric_info`` (direction, label, unit). Each model keeps one colour, marker and line style in
    every subplot; the legend sits below the axes. Returns the PNG path, or None (and writes nothing)
    when no record has any curve."""
    records = list(records)
    series, labels = {}, []
    for record in records:
        per_frame = record.get("per_frame") or {}
        spread = record.get("per_frame_std") or {}
        label = str(record.get("label") or record.get("model") or "?")
        for metric in metrics:
            curve = _curve(per_frame.get(metric)) if isinstance(per_frame, Mapping) else None
            if curve is not None:
                band = _curve(spread.get(metric)) if isinstance(spread, Mapping) else None
                series.setdefault(metric, []).append((label, curve, band if band is not None and
                                                      len(band) == len(curve) else None))
                if label not in labels:
                    labels.append(label)
    shown = [metric for metric in metrics if metric in series]
    if not shown:
        return None
    columns = max(1, min(len(labels), int(4.2 * len(shown) // 2.3)))
    legend_rows = math.ceil(len(labels) / columns)
    figure = Figure(figsize=(4.2 * len(shown), 3.3 + 0.22 * legend_rows), dpi=100, layout="constrained")
    axes = figure.subplots(1, len(shown), squeeze=False)[0]
    styles = {label: style(i) for i, label in enumerate(labels)}
    handles = {}
    for ax, metric in zip(axes, shown):
        for label, curve, band in series[metric]:
            frames = np.arange(1, len(curve) + 1)
            handles[label], = ax.plot(frames, curve, linewidth=1.3, markersize=4, alpha=0.95,
                                      markevery=max(1, len(curve) // 12), **styles[label])
            if band is not None:
                ax.fill_between(frames, curve - band, curve + band, color=styles[label]["color"], alpha=0.15,
                                linewidth=0)
        heading, ylabel = _axis_title(metric, records)
        ax.set_title(heading)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("predicted frame")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    figure.legend([handles[label] for label in labels], labels, loc="outside lower center", ncols=columns,
                  fontsize="small", frameon=False)
    banded = any(band is not None for curves in series.values() for _, _, band in curves)
    heading = "; ".join(part for part in (title, "shaded: ± 1 std over seeds" if banded else None) if part)
    if heading:
        figure.suptitle(heading)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", metadata=PNG_METADATA)
    return Path(path)


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


def _load(path, image_origin: str = "upper") -> Optional[dict]:
    """A sample npz as float arrays; frames stored bottom row first ("lower") are flipped to draw upright."""
    try:
        with np.load(path) as data:
            arrays = {key: np.asarray(data[key], dtype=float) for key in ("inputs", "truth", "pred")}
            bounds = [float(data[key]) if key in data else math.nan for key in ("vmin", "vmax")]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(a.ndim != 4 for a in arrays.values()) or arrays["pred"].shape != arrays["truth"].shape:
        return None
    if image_origin == "lower":
        arrays = {key: a[..., ::-1, :] for key, a in arrays.items()}
    arrays["bounds"] = bounds
    return arrays


def _display_range(first) -> Tuple[float, float]:
    low, high = first["bounds"]
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        low, high = float(np.nanmin(first["truth"])), float(np.nanmax(first["truth"]))
        if not (math.isfinite(low) and math.isfinite(high)):
            low, high = 0.0, 1.0
    return low, high


def _loaded(samples, image_origin) -> List[Tuple[str, dict]]:
    return [(str(label), data) for label, source in samples
            if (data := _load(source, image_origin)) is not None]


def plot_strip(samples: Sequence[Tuple[str, object]], path, max_columns: int = MAX_COLUMNS,
               title: Optional[str] = None, image_origin: str = "upper") -> Optional[Path]:
    """A prediction strip of one test clip: rows are the inputs, the ground truth and each model's
    prediction. ``samples`` holds ``(label, npz path)``; each npz has ``inputs [T_in, C, H, W]``,
    ``truth`` and ``pred [T_out, C, H, W]`` in native values and scalars ``vmin`` / ``vmax``
    (NaN when unbounded: the truth's range is used). Inputs and truth come from the first readable
    file; unreadable files are skipped. Long clips show at most ``max_columns`` evenly spread frames.
    ``image_origin="lower"``: row 0 of a frame is its bottom (gridded data stored south to north).
    Returns the PNG path, or None (and writes nothing) when no file is readable."""
    loaded = _loaded(samples, image_origin)
    if not loaded:
        return None
    first = loaded[0][1]
    low, high = _display_range(first)
    in_columns = _columns(len(first["inputs"]), max_columns)
    out_columns = _columns(len(first["truth"]), max_columns)
    # frame captions above the inputs and the ground truth; the predictions below share the truth's
    rows = [("inputs", first["inputs"], in_columns, "t={}", -len(first["inputs"]) + 1),
            ("ground truth", first["truth"], out_columns, "t=+{}", 1)]
    rows += [(label, data["pred"], out_columns, None, 1) for label, data in loaded
             if data["pred"].shape == first["truth"].shape]
    # one mosaic on one axes: drawing dozens of small axes costs seconds, one image milliseconds
    height, width = first["truth"].shape[-2:]
    gap, band = max(1, min(height, width) // 16), max(4, round(0.32 * height))  # band: room for captions
    n_columns = max(len(in_columns), len(out_columns))
    tops, top = [], 0
    for _, _, _, caption, _ in rows:
        top += band if caption else gap
        tops.append(top)
        top += height
    mosaic = np.ones((top, n_columns * (width + gap) - gap, 3))
    inches = 1.0 * n_columns
    figure = Figure(figsize=(inches, inches * top / mosaic.shape[1]), dpi=100)
    ax = figure.add_axes((0, 0, 1, 1))
    for (label, clip, columns, caption, offset), row_top in zip(rows, tops):
        for c, index in enumerate(columns):
            left = c * (width + gap)
            mosaic[row_top:row_top + height, left:left + width] = _rgb(clip[index], low, high)
            if caption:
                ax.text(left + width / 2, row_top - band / 2, caption.format(index + offset), fontsize=8,
                        ha="center", va="center")
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([row_top + height / 2 for row_top in tops], [row[0] for row in rows], fontsize=9)
    ax.tick_params(length=0)
    ax.set_frame_on(False)
    if title:
        ax.set_title(title, fontsize=9, pad=2)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", metadata=PNG_METADATA, bbox_inches="tight", pad_inches=0.05)
    return Path(path)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's embedded scalable font (needs FreeType)
    except (TypeError, ValueError, OSError, ImportError):
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def animate_samples(samples: Sequence[Tuple[str, object]], path, image_origin: str = "upper",
                    max_columns: int = GIF_MAX_COLUMNS, frame_ms: int = GIF_FRAME_MS) -> Optional[Path]:
    """An animated GIF of one test clip, panels side by side: the ground truth and each model's
    prediction (same npz files as :func:`plot_strip`). The observed frames play first in every panel,
    then each panel shows its own future; a caption says which frame is showing. Small frames are
    enlarged by an integer factor. Returns the GIF path, or None (and writes nothing) when no file is
    readable."""
    from PIL import Image, ImageDraw

    loaded = _loaded(samples, image_origin)
    if not loaded:
        return None
    first = loaded[0][1]
    low, high = _display_range(first)
    panels = [("ground truth", first["truth"])] + [(label, data["pred"]) for label, data in loaded
                                                   if data["pred"].shape == first["truth"].shape]
    height, width = first["truth"].shape[-2:]
    scale = max(1, math.ceil(GIF_MIN_SIDE / height)) if height < GIF_MIN_SIDE else 1
    cell_h, cell_w = height * scale, width * scale
    font_size = 13
    font, caption_font = _font(font_size), _font(font_size + 2)
    label_h, gap, head = font_size + 6, 6, font_size + 12
    n_columns = min(len(panels), max_columns)
    n_rows = math.ceil(len(panels) / n_columns)
    canvas = (n_columns * (cell_w + gap) + gap, head + n_rows * (label_h + cell_h + gap))

    def to_pixels(frame):
        rgb = (_rgb(frame, low, high) * 255).round().astype(np.uint8)
        return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)

    t_in = len(first["inputs"])
    steps = [(f"observed  t={t - t_in + 1}", [first["inputs"][t]] * len(panels)) for t in range(t_in)]
    steps += [(f"predicted  t=+{t + 1}", [clip[t] for _, clip in panels]) for t in range(len(first["truth"]))]
    images = []
    for caption, frames in steps:
        image = Image.new("RGB", canvas, "white")
        draw = ImageDraw.Draw(image)
        draw.text((gap, 4), caption, fill="black", font=caption_font)
        for i, ((label, _), frame) in enumerate(zip(panels, frames)):
            row, column = divmod(i, n_columns)
            left = gap + column * (cell_w + gap)
            top = head + row * (label_h + cell_h + gap)
            draw.text((left, top + 2), _fit(draw, label, font, cell_w), fill="black", font=font)
            image.paste(Image.fromarray(to_pixels(frame)), (left, top + label_h))
        images.append(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256))
    durations = [frame_ms] * (len(images) - 1) + [GIF_HOLD_MS]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                       optimize=True)
    return Path(path)
