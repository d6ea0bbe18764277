"""The results site: run records rendered as static, self-contained HTML (an index of tasks, a page per task
and profile, a page per run) with the leaderboard's conventions, interactive curves and the sample clips.

A pure function of the records, like the boards: no plugin, server or network is needed to write or read
it. Every page opens from the file system (file://) or any static host; its data sit inline in the page
(a browser refuses to fetch files beside a page opened from disk), and the one library it uses, uPlot
(``stbench/site/``, MIT, its licence beside it), is copied into the site.
"""
import csv
import html
import json
import math
import os
import re
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import leaderboard as board
from .errors import UserError
from .files import write_text_atomic
from .records import read_records

ASSETS = Path(__file__).with_name("site")
ASSET_FILES = ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE.uPlot", "site.js", "site.css")
MARKER = ".stbench-report"  # in every site folder: a folder without it is never replaced
DEFAULT_SITE = "report"
SAMPLES_SHOWN = 3  # models whose sample clips show when a page opens; the reader ticks others
OMITTED_KEYS = ("per_clip", "_path")  # too long for a page (thousands of values); the record file keeps them


# ---------------------------------------------------------------- HTML pieces

def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_INLINE = [
    (re.compile(r"&lt;u&gt;(.+?)&lt;/u&gt;"), r"<u>\1</u>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
]


def inline(text) -> str:
    """The board's inline markdown (bold best, underlined second, italic, code) as HTML; all else escaped."""
    out = esc(text)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def sort_value(text) -> Optional[float]:
    """The number a cell sorts by: its first number (the mean of 'mean ± std'); None for '–', 'n/a' or words."""
    match = _NUMBER.search(re.sub(r"<[^>]+>|\*", "", str(text)))
    if match is None or str(text).strip().startswith(("↳", board.DASH)):
        return None
    try:
        value = float(match.group(0))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def json_script(element_id: str, payload) -> str:
    """Data for a page's script, inline (``</`` escaped so no value can end the element)."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def page(title: str, body: str, depth: int, crumbs: Sequence = ()) -> str:
    """A whole page: assets linked relative to the site root ``depth`` folders up; nothing from a network."""
    up = "../" * depth
    trail = " / ".join([f'<a href="{up}index.html">results</a>']
                       + [f'<a href="{esc(href)}">{esc(text)}</a>' if href else esc(text) for text, href in crumbs])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="stbench report">
<title>{esc(title)}</title>
<link rel="stylesheet" href="{up}assets/uPlot.min.css">
<link rel="stylesheet" href="{up}assets/site.css">
</head>
<body>
<nav class="crumbs">{trail}</nav>
<main>
{body}
</main>
<footer>Written by <code>stbench report</code> from the run records. Plots: uPlot (MIT, <a href="{up}assets/LICENSE.uPlot">licence</a>).</footer>
<script src="{up}assets/uPlot.iife.min.js"></script>
<script src="{up}assets/site.js"></script>
</body>
</html>
"""


def kv_table(pairs, css: str = "kv") -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="{css}"><tbody>{rows}</tbody></table>'


def value_text(value) -> str:
    if isinstance(value, (dict, list)):
        return f"<code>{esc(json.dumps(value, default=str))}</code>"
    if isinstance(value, float):
        return esc(f"{value:.6g}")
    return esc(value)


# ---------------------------------------------------------------- the site's layout

def profile_page(task: str, profile: str) -> str:
    return f"{task}/{profile}.html"


def run_page(record) -> str:
    return f"runs/{record['task']}/{record['run']}.html"


def status_of(record) -> str:
    return str(record.get("status") or "?")


def _by_task(records) -> Dict[str, Dict[str, List[Dict]]]:
    tasks: Dict[str, Dict[str, List[Dict]]] = OrderedDict()
    for record in sorted(records, key=lambda r: (r["task"], board.PROFILE_ORDER.get(r.get("profile"), 9),
                                                 str(r.get("profile")))):
        tasks.setdefault(record["task"], OrderedDict()).setdefault(record["profile"], []).append(record)
    return tasks


# ---------------------------------------------------------------- the index

def index_html(tasks) -> str:
    rows = []
    for task, profiles in tasks.items():
        records = [r for group in profiles.values() for r in group]
        first = records[0]
        links = []
        for profile, group in profiles.items():
            table_rows = board.group_rows(group)
            links.append(f'<a href="{esc(profile_page(task, profile))}">{esc(profile)}</a> '
                         f'<span class="muted">({len(table_rows)} row{"s" if len(table_rows) != 1 else ""})</span>')
        counts = OrderedDict((s, sum(status_of(r) == s for r in records)) for s in ("ok", "failed", "running"))
        rows.append(
            f"<tr><td><a href=\"{esc(profile_page(task, next(iter(profiles))))}\"><code>{esc(task)}</code></a></td>"
            f"<td>{esc(first.get('dataset', '?'))}</td><td>{esc(first.get('protocol', '?'))}</td>"
            f"<td>{', '.join(links)}</td>"
            f"<td>{', '.join(f'{n} {s}' for s, n in counts.items() if n)}</td>"
            f"<td>{esc(max(str(r.get('created', '')) for r in records))}</td></tr>")
    body = (f"<h1>Results</h1><p>{len(tasks)} task{'s' if len(tasks) != 1 else ''}; each profile has its own table "
            "(profiles are never mixed). The tables follow the leaderboards' conventions.</p>"
            '<table class="grid" id="tasks"><thead><tr><th>Task</th><th>Dataset</th><th>Protocol</th>'
            "<th>Profiles</th><th>Runs</th><th>Newest record</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
    return page("stbench results", body, 0)


# ---------------------------------------------------------------- a task's profile

def _sample_media(site: Path, task: str, profile: str, rows) -> Dict[int, Dict[str, str]]:
    """Per row with a sample clip: its prediction strip (PNG) and animated clip (GIF), each beside the truth."""
    from . import figures

    media = {}
    origin = next((r["image_origin"] for row in rows for r in row["records"]
                   if r.get("image_origin") in ("upper", "lower")), "upper")
    folder = site / task / profile
    for i, row in enumerate(rows):
        sample = board._sample_path(row["records"][0])
        if sample is None:
            continue
        made = {}
        strip, clip = folder / f"row{i}.strip.png", folder / f"row{i}.gif"
        if figures.plot_strip([(row["label"], sample)], strip, image_origin=origin):
            made["strip"] = f"{profile}/{strip.name}"
        if figures.animate_samples([(row["label"], sample)], clip, image_origin=origin):
            made["gif"] = f"{profile}/{clip.name}"
        if made:
            media[i] = made
    return media


def _budget_key(row) -> str:
    return board.budget_text(row["budget"]) if row["budget"] is not None else "not trained here"


def _table_html(parts, rows, extra) -> str:
    """The board's table with a status and a runs column; one tbody per row (its published lines stay with it
    when sorted or filtered)."""
    cells = parts["cells"]
    headers = cells["headers"] + ["Status", "Runs"]
    numeric = [a == "right" for a in cells["align"]] + [False, False]
    head = "".join(f'<th class="{"num" if numeric[j] else "text"}" data-col="{j}"><button type="button" '
                   f'class="sort">{esc(h)}</button></th>' for j, h in enumerate(headers))
    groups: Dict[int, List[str]] = OrderedDict()
    for line, owner, published in zip(cells["body"], cells["owner"], cells["published"]):
        row = rows[owner]
        tds = []
        for j, text in enumerate(line):
            value = sort_value(text) if numeric[j] and not published else None
            data = f' data-v="{value!r}"' if value is not None else ""
            tds.append(f'<td class="{"num" if numeric[j] else "text"}"{data}>{inline(text)}</td>')
        if published:
            tds += ["<td></td>", "<td></td>"]
            groups[owner].append(f'<tr class="published">{"".join(tds)}</tr>')
        else:
            links = ", ".join(f'<a href="../{esc(run_page(r))}">seed {esc(r.get("seed"))}</a>' for r in row["records"])
            tds += ['<td class="text">ok</td>', f'<td class="text">{links}</td>']
            groups[owner] = [f"<tr>{''.join(tds)}</tr>"]
    bodies = []
    for i, lines in groups.items():
        row = rows[i]
        bodies.append(f'<tbody data-family="{esc(row["family"])}" data-budget="{esc(_budget_key(row))}" '
                      f'data-seeds="{len(row["records"])}" data-status="ok" data-label="{esc(row["label"])}">'
                      + "".join(lines) + "</tbody>")
    for record in extra:  # failed and running records: listed, never ranked
        label = board.row_label(record)
        status = status_of(record)
        empty = "".join(f'<td class="num">{board.DASH}</td>' for _ in cells["headers"][3:])
        reason = f' title="{esc(record.get("error"))}"' if record.get("error") else ""
        bodies.append(f'<tbody data-family="{esc(record.get("family", ""))}" data-budget="" data-seeds="1" '
                      f'data-status="{esc(status)}" data-label="{esc(label)}"><tr class="{esc(status)}">'
                      f'<td class="text">{esc(label)}</td><td class="text">{esc(record.get("family", ""))}</td>'
                      f'<td class="num" data-v="1">1</td>{empty}<td class="text"{reason}>{esc(status)}</td>'
                      f'<td class="text"><a href="../{esc(run_page(record))}">seed {esc(record.get("seed"))}</a>'
                      "</td></tr></tbody>")
    return (f'<table class="grid board" id="board"><thead><tr>{head}</tr></thead>{"".join(bodies)}</table>')


def _filters_html(rows, extra) -> str:
    families = list(OrderedDict.fromkeys([row["family"] for row in rows] + [r.get("family", "") for r in extra]))
    budgets = list(OrderedDict.fromkeys(_budget_key(row) for row in rows))
    seeds = sorted({len(row["records"]) for row in rows} | ({1} if extra else set()))
    statuses = ["ok"] + sorted({status_of(r) for r in extra})

    def checks(name, values):
        return "".join(f'<label><input type="checkbox" data-filter="{name}" value="{esc(v)}" checked> '
                       f"{esc(v or '(none)')}</label>" for v in values)

    def choice(name, values, word):
        options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        return (f'<label>{word} <select data-filter="{name}"><option value="">any</option>{options}</select>'
                "</label>")

    return ('<form class="filters" id="filters" onsubmit="return false">'
            f'<fieldset><legend>Family</legend>{checks("family", families)}</fieldset>'
            f'<fieldset><legend>Status</legend>{checks("status", statuses)}</fieldset>'
            f'<fieldset><legend>Budget and seeds</legend>{choice("budget", budgets, "budget")} '
            f'{choice("seeds", [str(n) for n in seeds], "seeds (n)")}</fieldset>'
            '<fieldset><legend>Model</legend><input type="search" data-filter="label" placeholder="name contains">'
            '</fieldset><p class="muted" id="shown"></p></form>')


def _curves_payload(rows) -> Dict:
    curves = [board.row_curves(row) for row in rows]
    metrics = list(OrderedDict.fromkeys(k for c in curves for k in c["per_frame"]))
    payload = {"metrics": [], "models": [c["label"] for c in curves]}
    for key in metrics:
        info = next((c["metric_info"][key] for c in curves if key in c["metric_info"]), {})
        series = []
        for i, c in enumerate(curves):
            values = c["per_frame"].get(key)
            if not values:
                continue
            std = c["per_frame_std"].get(key)
            series.append({"model": i, "mean": [_finite(v) for v in values],
                           "std": [_finite(v) for v in std] if std else None})
        if series:
            payload["metrics"].append({"key": key, "title": board.header(info), "series": series,
                                       "higher": bool(info.get("higher_is_better"))})
    return payload


def _finite(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _media_html(rows, media) -> str:
    if not media:
        return "<p class=\"muted\">No record of this profile kept a sample clip.</p>"
    picks = "".join(f'<label><input type="checkbox" data-sample="{i}"{" checked" if n < SAMPLES_SHOWN else ""}> '
                    f"{esc(rows[i]['label'])}</label>" for n, i in enumerate(media))
    figures = "".join(
        f'<figure class="sample" data-sample="{i}"{"" if n < SAMPLES_SHOWN else " hidden"}>'
        f"<figcaption>{esc(rows[i]['label'])}</figcaption>"
        + (f'<img class="full" src="{esc(m["gif"])}" alt="sample clip of {esc(rows[i]["label"])}">' if "gif" in m
           else "")
        + (f'<img class="full" src="{esc(m["strip"])}" alt="prediction strip of {esc(rows[i]["label"])}">'
           if "strip" in m else "")
        + "</figure>" for n, (i, m) in enumerate(media.items()))
    return (f'<div class="picks" id="sample-picks">{picks}</div>'
            f'<div class="samples" id="samples">{figures}</div>')


def profile_html(site: Path, task: str, profile: str, records, pictures: bool) -> str:
    rows = board.group_rows(records)
    extra = [r for r in records if status_of(r) != "ok"]
    depth = 1
    crumbs = [(task, None), (profile, None)]
    if not rows:
        body = (f"<h1><code>{esc(task)}</code> — profile <code>{esc(profile)}</code></h1>"
                "<p>No finished run in this profile yet.</p>" + _table_failed_only(extra))
        return page(f"{task} ({profile})", body, depth, crumbs)
    parts = board.section_parts(task, profile, rows)
    media = _sample_media(site, task, profile, rows) if pictures else {}
    lead = ""
    for headers, body in parts["lead_time"]:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        lines = "".join("<tr>" + "".join(f'<td class="{"text" if j == 0 else "num"}">{esc(c)}</td>'
                                         for j, c in enumerate(line)) + "</tr>" for line in body)
        lead += f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>'
    sections = [
        f"<h1><code>{esc(task)}</code> — profile <code>{esc(profile)}</code></h1>",
        f'<p class="caution">{inline(parts["caution"])}</p>' if parts["caution"] else "",
        "<ul class=\"facts\">" + "".join(f"<li>{inline(f)}</li>" for f in parts["facts"]) + "</ul>",
        "<h2>Table</h2>",
        '<p class="muted">Click a column header to sort (again to reverse). Rows under another budget (†) or '
        "selected on test data (‡) carry the board's marks; failed and running runs are listed, never ranked.</p>",
        _filters_html(rows, extra),
        '<div class="scroll">' + _table_html(parts, rows, extra) + "</div>",
    ]
    if lead:
        sections.append(f"<details><summary>{esc(board.LEAD_TIME_SUMMARY)}</summary>{lead}</details>")
    if parts["notes"]:
        sections.append("<h2>Notes</h2><ul>" + "".join(f"<li>{inline(n)}</li>" for n in parts["notes"]) + "</ul>")
    if parts["sources"]:
        sections.append("<h2>Published figures</h2><ul>"
                        + "".join(f"<li>{inline(s)}</li>" for s in parts["sources"]) + "</ul>")
    failed = [r for r in extra if status_of(r) == "failed"]
    if failed:
        sections.append("<h2>Failed runs (not ranked)</h2><ul>" + "".join(
            f'<li><a href="../{esc(run_page(r))}">{esc(board.row_label(r))} (seed {esc(r.get("seed"))})</a>: '
            f'{esc(r.get("error", ""))}</li>' for r in failed) + "</ul>")
    curves = _curves_payload(rows)
    if curves["metrics"]:
        sections += [
            "<h2>Per-frame metrics</h2>",
            '<p class="muted">Mean over a row\'s seeds per predicted frame; the band is ± 1 std over seeds where a '
            "row has several. Hover a chart for the values; tick models to show or hide them.</p>",
            '<div class="chart-options"><label><input type="checkbox" id="log-scale"> log scale</label> '
            '<label><input type="checkbox" id="bands" checked> ± std bands</label> '
            '<button type="button" id="models-all">all models</button> '
            '<button type="button" id="models-none">no model</button></div>',
            '<div class="picks" id="model-picks"></div>',
            '<div class="charts" id="curves"></div>',
            json_script("curves-data", curves),
        ]
    sections += ["<h2>Sample clips</h2>",
                 '<p class="muted">One test clip per row, at full size: the animated ground truth beside the '
                 "prediction, and the strip of inputs, truth and prediction. Tick models to compare them side by "
                 "side.</p>", _media_html(rows, media)]
    return page(f"{task} ({profile})", "\n".join(s for s in sections if s), depth, crumbs)


def _table_failed_only(extra) -> str:
    if not extra:
        return ""
    return "<ul>" + "".join(f'<li><a href="../{esc(run_page(r))}">{esc(board.row_label(r))} (seed '
                            f'{esc(r.get("seed"))})</a>: {esc(status_of(r))} {esc(r.get("error", ""))}</li>'
                            for r in extra) + "</ul>"


# ---------------------------------------------------------------- a run

def read_log(path: Path) -> Dict[str, Dict[str, List]]:
    """``log.csv`` as {name: {step: [...], value: [...]}}; an unreadable file or row is left out."""
    series: Dict[str, Dict[str, List]] = OrderedDict()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                try:
                    step, value = int(row["step"]), float(row["value"])
                except (KeyError, TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    entry = series.setdefault(str(row.get("name") or "?"), {"step": [], "value": []})
                    entry["step"].append(step)
                    entry["value"].append(value)
    except (OSError, UnicodeDecodeError, csv.Error):
        return OrderedDict()
    return series


def _log_of(record) -> Optional[Path]:
    if not record.get("_path"):
        return None
    path = Path(record["_path"]).with_name("log.csv")
    return path if path.is_file() else None


def setting_source(record, section: str, key: str) -> str:
    """Where a resolved setting came from, as far as the record tells."""
    recorded = ((record.get("settings_sources") or {}).get(section) or {}).get(key)
    if recorded:
        return str(recorded)
    if key in (record.get("overrides") or {}):
        return "command line (--set)"
    declared = (record.get("budget") or {}).get("model_declared") or {}
    if section == "train" and key in declared:
        return f"equal budget of the profile (the model declared {declared[key]!r}, not applied)"
    return "not recorded (an older record): engine, dataset or model defaults of the profile"


def _settings_html(record) -> str:
    out = []
    for section, title in (("train", "Training settings"), ("hparams", "Model hyper-parameters"),
                           ("metric_options", "Metric options")):
        values = record.get(section) or {}
        if not values:
            continue
        lines = "".join(f"<tr><th>{esc(k)}</th><td>{value_text(v)}</td><td class=\"muted\">"
                        f"{esc(setting_source(record, section, k))}</td></tr>" for k, v in values.items())
        out.append(f"<h3>{esc(title)}</h3><table class=\"grid settings\"><thead><tr><th>setting</th><th>value</th>"
                   f"<th>from</th></tr></thead><tbody>{lines}</tbody></table>")
    return "".join(out) or "<p class=\"muted\">The record holds no settings.</p>"


def _provenance_html(record) -> str:
    evaluation = record.get("evaluation") or {}
    pairs = [("evaluated", esc(evaluation.get("source", "trained")))]
    checkpoint = board.checkpoint_of(record)
    if checkpoint is not None:
        pairs += [("checkpoint file", f"<code>{esc(checkpoint['path'])}</code>"),
                  ("sha256", f"<code>{esc(checkpoint['sha256'])}</code>"), ("format", esc(checkpoint["format"]))]
    trained_on = evaluation.get("trained_on") or {}
    if trained_on:
        pairs.append(("trained on", value_text(trained_on)))
    if record.get("checkpoint"):
        pairs.append(("checkpoint written", f"<code>{esc(record['checkpoint'])}</code>"))
    pairs.append(("weights evaluated", esc(board.selection_text(record))))
    selection = record.get("selection") or {}
    for key in ("epoch", "score", "metric"):
        if selection.get(key) is not None:
            pairs.append((f"selection {key}", value_text(selection[key])))
    if record.get("resumed_from_epoch") is not None:
        pairs.append(("resumed from epoch", esc(record["resumed_from_epoch"])))
    if evaluation.get("hash"):
        pairs.append(("evaluation hash", f"<code>{esc(evaluation['hash'])}</code>"))
    if record.get("sample"):
        pairs.append(("sample clip", f"<code>{esc(record['sample'])}</code>"))
    return kv_table(pairs)


def _metrics_html(record) -> str:
    metrics = record.get("metrics") or {}
    if not metrics:
        return "<p class=\"muted\">No metric in this record.</p>"
    lines = []
    for key, value in metrics.items():
        info = board.metric_info(key, [record])
        number = _finite(value)
        shown = board.DASH if value is None else (f"{number:.{int(info.get('decimals', 4))}f}" if number is not None
                                                  else str(value))
        why = (record.get("metrics_unavailable") or {}).get(key, "")
        lines.append(f"<tr><th>{esc(board.header(info))}</th><td class=\"num\">{esc(shown)}</td>"
                     f"<td class=\"muted\">{esc(why)}</td></tr>")
    out = f'<table class="grid"><tbody>{"".join(lines)}</tbody></table>'
    provenance = record.get("metric_provenance") or {}
    if provenance:
        out += "<p>Weight files behind metrics:</p>" + kv_table((k, value_text(v)) for k, v in provenance.items())
    return out


def run_html(record) -> str:
    task, run = record["task"], record["run"]
    status = status_of(record)
    depth = 2
    back = f"../../{profile_page(task, record['profile'])}"
    crumbs = [(task, None), (record["profile"], back), (run, None)]
    identity = [("model", esc(board.row_label(record))), ("family", esc(record.get("family", ""))),
                ("model plugin", esc(record.get("model_plugin") or "")),
                ("task", f"<code>{esc(task)}</code> ({esc(record.get('protocol', '?'))} protocol, dataset "
                         f"{esc(record.get('dataset', '?'))})"),
                ("profile", esc(record.get("profile"))), ("seed", esc(record.get("seed"))),
                ("status", f'<span class="status {esc(status)}">{esc(status)}</span>'),
                ("training identity (hash)", f"<code>{esc(record.get('config_hash', ''))}</code>"),
                ("budget", esc(board.budget_text(board.budget_of(record)))),
                ("created", esc(record.get("created", ""))),
                ("duration", esc(f"{_finite(record.get('duration_seconds')) or 0:.1f} s"))]
    for key, word in (("epochs", "epochs"), ("steps", "steps"), ("params", "params"), ("macs", "MACs (batch 1)"),
                      ("train_seconds_per_epoch", "train s/epoch"), ("inference_seconds", "inference s"),
                      ("fps", "FPS"), ("precision", "precision")):
        if record.get(key) is not None:
            identity.append((word, value_text(record[key])))
    if record.get("joint"):
        identity.append(("joint training", value_text(record["joint"])))
    sections = [f"<h1>{esc(run)}</h1>"]
    if status == "failed":
        sections.append(f'<p class="failure"><strong>Failed:</strong> {esc(record.get("error") or "no reason recorded")}'
                        "</p>")
    elif status == "running":
        sections.append('<p class="caution">Still running when the site was written (or stopped without a '
                        "final record).</p>")
    sections += [kv_table(identity), "<h2>Settings</h2>", _settings_html(record)]
    log = _log_of(record)
    series = read_log(log) if log is not None else OrderedDict()
    if not series and record.get("train_losses"):
        losses = [_finite(v) for v in record["train_losses"]]
        series = OrderedDict([("train/epoch_loss (from the record)",
                               {"step": list(range(1, len(losses) + 1)), "value": losses})])
    sections.append("<h2>Training curves</h2>")
    if series:
        where = f"from <code>{esc(log)}</code>" if log is not None else "from the record (no log.csv beside it)"
        sections += [f'<p class="muted">{where}; x is the optimiser step (the epoch for per-epoch values).</p>',
                     '<div class="chart-options"><label>series <select id="log-series"></select></label> '
                     '<label><input type="checkbox" id="log-scale"> log scale</label></div>',
                     '<div class="charts" id="loss"></div>', json_script("log-data", series)]
    else:
        sections.append('<p class="muted">No log.csv beside the record and no losses in it.</p>')
    sections += ["<h2>Metrics</h2>", _metrics_html(record),
                 "<h2>Weights and checkpoint</h2>", _provenance_html(record)]
    notes = record.get("notes") or {}
    if notes:
        sections.append("<h2>Notes</h2>" + kv_table((k, value_text(v)) for k, v in notes.items()))
    hardware = [(k, value_text(v)) for k, v in (record.get("hardware") or {}).items()]
    for section in ("distributed", "loading"):
        hardware += [(f"{section}: {k}", value_text(v)) for k, v in (record.get(section) or {}).items()]
    sections += ["<h2>Hardware</h2>", kv_table(hardware) if hardware else "<p class=\"muted\">not recorded</p>"]
    versions = record.get("versions") or {}
    if versions:
        sections += ["<h2>Versions</h2>", kv_table((k, value_text(v)) for k, v in versions.items())]
    data = record.get("data") or {}
    if data:
        sections += ["<h2>Data</h2>", kv_table((k, value_text(v)) for k, v in data.items())]
    shown = {k: v for k, v in record.items() if k not in OMITTED_KEYS}
    sections.append("<details><summary>The whole record (per-clip values left out)</summary><pre>"
                    + esc(json.dumps(shown, indent=1, default=str)) + "</pre></details>")
    return page(f"{run}", "\n".join(sections), depth, crumbs)


# ---------------------------------------------------------------- writing the site

def _fresh_folder(site: Path) -> Path:
    """An empty folder beside ``site`` to build into (a reader of the old site never sees half a new one)."""
    site.parent.mkdir(parents=True, exist_ok=True)
    building = site.with_name(f".{site.name}.building-{os.getpid()}")
    if building.exists():
        shutil.rmtree(building)
    building.mkdir()
    return building


def _swap(building: Path, site: Path) -> None:
    if site.exists():
        if not (site / MARKER).exists() and (not site.is_dir() or any(site.iterdir())):
            shutil.rmtree(building, ignore_errors=True)
            raise UserError(f"{site.resolve()} exists and is not a site stbench wrote; choose another --site "
                            "or remove it")
        old = site.with_name(f".{site.name}.old-{os.getpid()}")
        os.replace(site, old)
        os.replace(building, site)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(building, site)


def write_report(out_dir, site=None, pictures: bool = True) -> Path:
    """Write the site for every record under ``out_dir/runs`` into ``site`` (default ``out_dir/report``),
    replacing an older site there as a whole. Returns the index page."""
    out_dir = Path(out_dir)
    site = Path(site) if site is not None else out_dir / DEFAULT_SITE
    records = read_records(out_dir)
    if not records:
        raise UserError(f"no run records under {(out_dir / 'runs').resolve()}; run 'stbench run' first, or "
                        "name the folder that holds runs/ with --out")
    building = None
    try:
        building = _fresh_folder(site)
        (building / "assets").mkdir()
        for name in ASSET_FILES:
            shutil.copyfile(ASSETS / name, building / "assets" / name)
        write_text_atomic(building / MARKER, "a site written by `stbench report`; rewritten as a whole\n")
        tasks = _by_task(records)
        write_text_atomic(building / "index.html", index_html(tasks))
        for task, profiles in tasks.items():
            (building / task).mkdir()
            for profile, group in profiles.items():
                (building / task / profile).mkdir()
                write_text_atomic(building / profile_page(task, profile),
                                  profile_html(building, task, profile, group, pictures))
                for record in group:
                    write_text_atomic(building / run_page(record), run_html(record))
        _swap(building, site)
    except OSError as error:
        if building is not None:
            shutil.rmtree(building, ignore_errors=True)
        from .files import as_disk_full

        full = as_disk_full(error, site)
        if full is not None:
            raise full from None
        raise UserError(f"cannot write the site under {site.resolve()}: {error.strerror or error}; free space or "
                        "choose another --site") from None
    return site / "index.html"
