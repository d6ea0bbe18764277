"""The results site (`stbench report`): what it says matches the board, pages for every run, safe HTML, and a real
browser that sorts, filters, toggles curves and opens a run page without a console error."""
import html
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from stbench import leaderboard
from stbench.cli import main
from stbench.config import resolve_with_sources
from stbench.records import read_records, write_json_atomic
from stbench.report import ASSET_FILES, inline, sort_value, write_report
from stbench.specs import DatasetSpec, ModelSpec

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "leaderboards"  # the README's pictures of the site, made by the browser test below
INFO = {"mse": {"higher_is_better": False, "target": None, "label": "MSE", "unit": "", "decimals": 2},
        "ssim": {"higher_is_better": True, "target": None, "label": "SSIM", "unit": "", "decimals": 4}}


def record(model, seed, mse, family="recurrent-free", status="ok", task="toy-6-6", profile="quick", **extra):
    rng = np.random.default_rng(seed + len(model))
    clips = (mse + rng.normal(0, 0.5, 40)).tolist()
    result = {"run": f"{model}__{profile}__seed{seed}", "status": status, "model": model, "family": family,
              "task": task, "dataset": "toy", "protocol": "equal", "t_in": 6, "t_out": 6, "profile": profile,
              "seed": seed, "overrides": {}, "train": {"epochs": 3, "batch_size": 4, "train_samples": 12, "lr": 0.01},
              "hparams": {"hid": 8},
              "settings_sources": {"train": {"lr": "model's declaration (quick profile)"},
                                   "hparams": {"hid": "command line (--set)"}},
              "budget": {"kind": "epochs", "value": 3, "epochs": 3, "train_clips": 12, "batch_size": 4},
              "params": 1_500_000, "macs": 2_250_000_000, "epochs": 3, "train_seconds_per_epoch": 1.5,
              "inference_seconds": 0.25, "fps": 24.0, "metrics": {"mse": float(np.mean(clips)), "ssim": 0.5 - mse / 100},
              "metric_info": INFO, "per_clip": {"mse": clips},
              "per_frame": {"mse": [mse - 1 + 0.4 * t + 0.1 * seed for t in range(6)],
                            "ssim": [0.6 - 0.02 * t - mse / 100 for t in range(6)]},
              "data": {"train": {"clips": 12, "source": "train.npy"}, "test": {"clips": 40, "source": "test.npy"}},
              "versions": {"stbench": "0.1.0", "torch": "2.13.0"},
              "hardware": {"device": "cpu", "cpu": "Toy CPU", "cpu_threads": 2}, "created": f"2026-01-0{seed + 1}",
              "train_losses": [0.3, 0.2, 0.1]}
    if status != "ok":
        result = {k: result[k] for k in ("run", "status", "model", "family", "task", "dataset", "profile", "seed",
                                         "train", "hparams", "created")}
        result["error"] = "loss became nan at epoch 2; lower --set lr" if status == "failed" else None
    result.update(extra)
    return result


def make_runs(root: Path) -> Path:
    """A runs/ tree: three models (one with two seeds), another family, a failed run, a sample clip and a log."""
    rng = np.random.default_rng(0)
    made = [record("alpha", 0, 10.0), record("alpha", 1, 10.4), record("beta", 0, 20.0, family="recurrent"),
            record("gamma", 0, 15.0, family="hybrid", overrides={"note": "<script>alert(1)</script>"}),
            record("delta", 0, 0.0, family="recurrent", status="failed")]
    for rec in made:
        folder = root / "runs" / rec["task"] / rec["run"]
        folder.mkdir(parents=True)
        if rec["status"] == "ok":
            np.savez(folder / "sample.npz", inputs=rng.random((6, 1, 16, 16)), truth=rng.random((6, 1, 16, 16)),
                     pred=rng.random((6, 1, 16, 16)), vmin=0.0, vmax=1.0)
            rec["sample"] = str(folder / "sample.npz")
            lines = ["step,epoch,name,value,wall_time"] + [f"{s},{1 + s // 4},train/loss,{1.0 / s!r},0.0"
                                                           for s in range(1, 13)]
            (folder / "log.csv").write_text("\n".join(lines + ["7,2,train/loss,not-a-number,0.0"]) + "\n")
        write_json_atomic(folder / "record.json", rec)
    return root


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def test_the_site_says_what_the_board_says(tmp_path):
    out = make_runs(tmp_path)
    index = write_report(out)
    site = out / "report"
    assert index == site / "index.html"
    for name in ASSET_FILES:
        assert (site / "assets" / name).stat().st_size > 0
    assert "MIT" in (site / "assets" / "LICENSE.uPlot").read_text()
    page = (site / "toy-6-6" / "quick.html").read_text()
    records = [r for r in read_records(out) if r["status"] == "ok"]
    rows = leaderboard.group_rows(records)
    parts = leaderboard.section_parts("toy-6-6", "quick", rows)
    shown = text_of(page)
    for fact in parts["facts"] + parts["notes"]:  # every fact and note of the board, in the same words
        assert text_of(inline(fact)) in shown
    assert text_of(inline(parts["caution"])) in shown
    bodies = re.findall(r"<tbody (.*?)</tbody>", page, re.S)
    assert len(bodies) == 4  # three table rows and the failed run
    by_label = {html.unescape(re.search(r'data-label="([^"]*)"', b).group(1)).split(" ")[0]: b for b in bodies}
    for line in parts["cells"]["body"]:
        body = by_label[line[0].split(" ")[0]]
        cells = [text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)]
        assert cells[:len(line)] == [text_of(inline(c)) for c in line]
    best = leaderboard.table_cells("toy-6-6", rows, leaderboard._majority_budget(rows))["body"]
    assert any(c.startswith("**") for line in best for c in line)  # the board marks a best cell ...
    assert "<strong>" in by_label["alpha"]  # ... and the site marks the same one
    assert 'data-status="failed"' in by_label["delta"] and "loss became nan" in page
    assert 'data-family="recurrent"' in by_label["beta"] and 'data-seeds="2"' in by_label["alpha"]
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # per-frame curves (mean and std over seeds) and a strip and a clip per row with a sample
    assert 'id="curves-data"' in page and '"std": [' in page
    assert (site / "toy-6-6" / "quick" / "row0.strip.png").stat().st_size > 0
    assert (site / "toy-6-6" / "quick" / "row0.gif").read_bytes()[:3] == b"GIF"
    # a page per run, failed runs included, with settings and where they came from, the log and the hardware
    for rec in read_records(out):
        assert (site / "runs" / "toy-6-6" / f"{rec['run']}.html").exists()
    run = (site / "runs" / "toy-6-6" / "alpha__quick__seed0.html").read_text()
    assert "model&#x27;s declaration (quick profile)" in run and "command line (--set)" in run
    assert '"train/loss"' in run and "Toy CPU" in run and "the last epoch&#x27;s weights" in run
    failed = (site / "runs" / "toy-6-6" / "delta__quick__seed0.html").read_text()
    assert "Failed:" in failed and "lower --set lr" in failed
    # nothing from a network: no script, style, image or font from http(s)
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css"):
            text = path.read_text()
            assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text), path
            assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", text), path


def test_inline_marks_and_sorting_values():
    assert inline("**1.00 ± 0.10**") == "<strong>1.00 ± 0.10</strong>"
    assert inline("<u>2.00</u>") == "<u>2.00</u>" and inline("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert inline("↳ *published [1]*") == "↳ <em>published [1]</em>" and inline("`task`") == "<code>task</code>"
    assert inline("C x H x W") == "C x H x W"
    assert sort_value("**12.5 ± 0.3**") == 12.5 and sort_value("1e-3 (n=2)") == 0.001
    assert sort_value(leaderboard.DASH) is None and sort_value("n/a") is None


def test_the_command_writes_replaces_and_refuses_in_one_line(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no run records" in err and "Traceback" not in err
    out = make_runs(tmp_path)
    assert main(["report", "--out", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    stale = out / "report" / "runs" / "toy-6-6" / "gone.html"
    stale.write_text("old")
    assert main(["report", "--out", str(out)]) == 0  # a site is rewritten as a whole
    assert not stale.exists() and (out / "report" / "index.html").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["report", "--out", str(out), "--site", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a site stbench wrote" in err and err.count("\n") == 0
    assert (mine / "notes.txt").read_text() == "keep me" and not list(tmp_path.glob(".mine*"))


def test_settings_say_where_they_came_from():
    model = ModelSpec(name="toy", family="recurrent-free", build=lambda task, hparams: None,
                      hparams={"quick": {"default": {"hid": 8, "lr": 0.01}}})
    dataset = DatasetSpec(name="toyset", shape=(1, 16, 16), open=None, max_length=12, layout="",
                          train_defaults={"quick": {"batch_size": 8}})
    train, hparams, applied, sources = resolve_with_sources(model, dataset, "quick", {"hid": 4})
    assert hparams["hid"] == 4 and applied == {"hid": 4}
    assert sources["hparams"]["hid"] == "command line (--set)"
    assert sources["train"]["lr"].startswith("model toy's declaration")
    assert sources["train"]["batch_size"] == "dataset toyset (quick profile)"
    assert sources["train"]["epochs"] == "engine default (quick profile)"
    assert set(sources["train"]) == set(train)


# ---------------------------------------------------------------- in a real browser

def _browser():
    """Debian's chromium and Playwright's Python driver, or a skip that says which is missing."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium installed (make setup installs Debian's chromium where apt is available)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                                                   "'stbench[test]')")
    return playwright, executable


def _open(playwright, executable):
    browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed request {request.url}"))
    page.on("request", lambda request: errors.append(f"network request {request.url}")
            if not request.url.startswith(("file:", "data:", "about:")) else None)
    return browser, page, errors


@pytest.mark.slow
def test_the_site_in_a_real_browser(tmp_path):
    sync_api, executable = _browser()
    out = make_runs(tmp_path)
    index = write_report(out)
    with sync_api.sync_playwright() as playwright:
        browser, page, errors = _open(playwright, executable)
        page.goto(index.as_uri())
        page.click("a[href='toy-6-6/quick.html']")
        assert page.locator("h1").inner_text().startswith("toy-6-6")

        def labels():
            return page.eval_on_selector_all("#board tbody:not([hidden])",
                                             "els => els.map(e => e.dataset.label.split(' ')[0])")

        assert page.inner_text("#shown") == "showing 4 of 4 rows"
        mse = page.locator("#board thead th", has_text="MSE")
        mse.locator("button").click()
        assert labels()[:3] == ["alpha", "gamma", "beta"] and mse.get_attribute("aria-sort") == "ascending"
        mse.locator("button").click()
        assert labels()[:3] == ["beta", "gamma", "alpha"]  # the failed run has no number: last either way
        assert labels()[-1] == "delta"
        page.uncheck("input[data-filter=family][value=recurrent]")
        assert sorted(labels()) == ["alpha", "gamma"] and page.inner_text("#shown") == "showing 2 of 4 rows"
        page.select_option("select[data-filter=seeds]", "2")
        assert labels() == ["alpha"]
        # per-frame curves: one chart per metric, a curve per model; untick one and it is gone
        charts = page.locator("#curves .chart")
        assert charts.count() == 2
        assert page.get_attribute("#curves .chart[data-metric=mse]", "data-models") == "3"
        page.uncheck("#model-picks input[data-model='1']")
        assert page.get_attribute("#curves .chart[data-metric=mse]", "data-models") == "2"
        page.check("#log-scale")
        box = page.locator("#curves .chart[data-metric=mse] .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        readout = page.inner_text("#curves .chart[data-metric=mse] .readout")
        assert readout.startswith("frame t+") and "alpha" in readout and "±" in readout and "beta" not in readout
        # sample clips at full size, side by side: tick another model
        assert page.locator("figure.sample:not([hidden])").count() == 3
        page.uncheck("#sample-picks input[data-sample='0']")
        assert page.locator("figure.sample:not([hidden])").count() == 2
        page.screenshot(path=str(tmp_path / "board.png"), full_page=True)
        # a run page: settings with their sources, the training curve from log.csv
        page.click("#board tbody[data-label=alpha] a:has-text('seed 1')")
        assert page.locator("h1").inner_text() == "alpha__quick__seed1"
        assert page.locator("#loss canvas").count() >= 1 and page.input_value("#log-series") == "train/loss"
        assert "command line (--set)" in page.inner_text("table.settings >> nth=1")
        page.check("#log-scale")
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
        browser.close()
    assert errors == []
    for name in ("board.png", "run.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_committed_records_in_a_browser_make_the_readme_screenshots(tmp_path):
    """The committed showcase renders with no console error; the README's pictures are this page's table (sorted
    by MSE) and its per-frame curves (STBENCH_WRITE_SCREENSHOT=1 writes them under leaderboards/)."""
    sync_api, executable = _browser()
    records = read_records(REPO)
    assert records, f"no committed run records under {REPO / 'runs'}"
    task = max(sorted({r["task"] for r in records}), key=lambda t: sum(r["task"] == t for r in records))
    profile = next(r["profile"] for r in records if r["task"] == task)
    write_report(REPO, tmp_path / "site", pictures=False)
    folder = SCREENSHOTS if os.environ.get("STBENCH_WRITE_SCREENSHOT") == "1" else tmp_path
    with sync_api.sync_playwright() as playwright:
        browser, page, errors = _open(playwright, executable)
        page.goto((tmp_path / "site" / task / f"{profile}.html").as_uri())
        page.locator("#board thead th", has_text="MSE").locator("button").click()
        page.evaluate("document.getElementById('filters').scrollIntoView()")
        page.screenshot(path=str(folder / "report.table.png"))
        page.click("#models-none")  # a handful of models keeps the picture legible
        for index in range(0, 40, 5):
            if page.locator(f"#model-picks input[data-model='{index}']").count():
                page.check(f"#model-picks input[data-model='{index}']")
        page.evaluate("document.getElementById('model-picks').scrollIntoView()")
        box = page.locator("#curves .chart[data-metric=mse] .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
        page.screenshot(path=str(folder / "report.curves.png"))
        browser.close()
    assert errors == []
    for name in ("report.table.png", "report.curves.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_real_run_page_says_where_each_setting_came_from(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(toy_root),
                 "--out", str(out), "--metrics", "mse", "--set", "lr=0.02"]) == 0
    (rec,) = read_records(out)
    assert rec["settings_sources"]["train"]["lr"] == "command line (--set)"
    assert set(rec["settings_sources"]["train"]) == set(rec["train"])
    write_report(out, pictures=False)
    page = (out / "report" / "runs" / "toy-6-6" / f"{rec['run']}.html").read_text()
    settings = {text_of(key): text_of(source) for key, source in
                re.findall(r"<tr><th>([^<]*)</th><td>(?:(?!</tr>).)*?</td><td class=\"muted\">([^<]*)</td></tr>", page)}
    assert settings["lr"] == "command line (--set)" and settings["epochs"].startswith(("engine default", "dataset",
                                                                                       "model tiny"))
