"""Leaderboards: seeds, significance-tested marks, equal budgets, paper-style cells, published rows."""
import re
from pathlib import Path

import numpy as np
import pytest

from stbench import plugins
from stbench.leaderboard import render, write_leaderboards
from stbench.records import read_records, write_json_atomic

REPO = Path(__file__).resolve().parents[1]
INFO = {"mse": {"higher_is_better": False, "target": None, "label": "MSE", "unit": "", "decimals": 2},
        "ssim": {"higher_is_better": True, "target": None, "label": "SSIM", "unit": "", "decimals": 4},
        "ssim_openstl": {"higher_is_better": True, "target": None, "label": "SSIM", "unit": "", "decimals": 4},
        "psnr": {"higher_is_better": True, "target": None, "label": "PSNR", "unit": "dB", "decimals": 2}}


def record(model, mse, ssim=0.5, profile="quick", seed=0, created="2026-01-01", task="toy-6-6", status="ok",
           overrides=None, epochs=3, clips=12, batch=4, per_clip=None, budget=None, **extra):
    """A run record in the shape the record writer produces (new fields: metric_info, per_clip, budget)."""
    result = {"run": f"{model}__{profile}__seed{seed}", "status": status, "model": model, "family": "recurrent-free",
              "task": task, "dataset": task.split("-")[0], "protocol": "equal", "t_in": 6, "t_out": 6,
              "profile": profile, "seed": seed, "overrides": overrides or {},
              "train": {"epochs": epochs, "batch_size": batch, "train_samples": clips},
              "params": 1_500_000, "macs": 2_250_000_000, "epochs": epochs, "train_seconds_per_epoch": 1.5,
              "inference_seconds": 0.25, "fps": 24.0, "metrics": {"mse": mse, "ssim": ssim},
              "metric_info": {k: INFO[k] for k in ("mse", "ssim")},
              "data": {"train": {"clips": clips, "source": "train.npy"}, "test": {"clips": 6, "source": "test.npy"}},
              "versions": {"stbench": "0.1.0", "torch": "2.13.0"}, "hardware": {"cpu": "CPU", "cpu_threads": 2},
              "created": created, "error": "loss became nan" if status == "failed" else None}
    if per_clip is not None:
        result["per_clip"] = per_clip
    if budget is not None:
        result["budget"] = budget
    result.update(extra)
    return result


def rows_of(markdown, name):
    return [line for line in markdown.splitlines() if re.match(rf"\| {re.escape(name)} +\|", line)]


def cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def column(markdown, title):
    header = next(line for line in markdown.splitlines() if line.startswith("| Model"))
    return cells(header).index(title)


def test_untested_marks_fixed_decimals_arrows_and_right_aligned_numbers(tmp_path):
    records = [record("a", 10.0, 0.90), record("b", 20.0, 0.95), record("c", 30.0, 0.80)]
    board = render("toy-6-6", records, tmp_path, pictures=False)
    (a,), (b,), (c,) = rows_of(board, "a"), rows_of(board, "b"), rows_of(board, "c")
    assert "**10.00**" in a and "<u>0.9000</u>" in a          # lowest MSE best; second-highest SSIM second
    assert "<u>20.00</u>" in b and "**0.9500**" in b
    assert "**" not in c and "<u>" not in c
    assert cells(a)[column(board, "Params (M)")] == "1.50" and cells(a)[column(board, "FLOPs (G)")] == "2.25"
    assert "MSE ↓" in board and "SSIM ↑" in board
    rule = next(line for line in board.splitlines() if line.startswith("|:--"))
    assert cells(rule)[0].startswith(":") and all(cell.endswith(":") for cell in cells(rule)[2:])  # right-aligned
    assert "marked by mean alone, not tested for significance" in board  # no per-clip values: says so


def test_units_come_from_the_records_metric_info(tmp_path):
    records = [record(m, 10.0 + i) for i, m in enumerate("ab")]
    for r, value in zip(records, (20.123, 21.0)):
        r["metrics"]["psnr"] = value
        r["metric_info"]["psnr"] = INFO["psnr"]
    board = render("toy-6-6", records, tmp_path, pictures=False)
    assert "PSNR (dB) ↑" in board and "**21.00**" in board and re.search(r"\| +20\.12 \|", board)
    assert "0.5000" in board and "**0.5000**" not in board  # equal values: no mark


def test_guessed_info_of_migrated_records_gives_way_and_sub_keys_read_well(tmp_path):
    a, b = record("a", 10.0), record("b", 11.0)
    for r in (a, b):
        r["migrated_from"] = 1  # schema 1: the reader guessed 4 decimals and the key as label
        r["metric_info"] = {"mse": {"higher_is_better": False, "label": "MSE", "unit": "", "decimals": 4}}
    board = render("toy-6-6", [a, b], tmp_path, pictures=False)
    assert "**10.00**" in rows_of(board, "a")[0]
    c, d = record("c", 10.0), record("d", 11.0)
    for r, value in ((c, 0.91), (d, 0.92)):
        r["metrics"]["ssim_openstl"] = value
        r["metric_info"]["ssim_openstl"] = dict(INFO["ssim_openstl"], label="SSIM_OPENSTL")
        r["metrics"]["csi_74"] = value
        r["metric_info"]["csi_74"] = {"higher_is_better": True, "label": "CSI_74", "decimals": 4}
    board = render("toy-6-6", [c, d], tmp_path, pictures=False)
    assert "SSIM (OpenSTL) ↑" in board and "CSI (74) ↑" in board


def test_seeds_make_one_row_with_mean_std_and_n_and_the_newest_record_per_seed_counts(tmp_path):
    records = [record("a", 10.0, seed=0), record("a", 12.0, seed=1), record("a", 99.0, seed=2, created="2026-01-01"),
               record("a", 14.0, seed=2, created="2026-01-02"), record("b", 30.0, seed=0)]
    board = render("toy-6-6", records, tmp_path, pictures=False)
    (a,) = rows_of(board, "a")
    assert cells(a)[column(board, "n")] == "3"
    assert cells(a)[column(board, "MSE ↓")] == "**12.00 ± 2.00**"  # mean and sample std of 10, 12, 14
    assert "99" not in a and "- Seeds: 0, 1, 2;" in board


def clip_values(offset, n=200, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    return (rng.gamma(2.0, 20.0, n) + offset + rng.normal(0, noise, n)).tolist()


def test_marks_need_a_significant_difference_and_the_board_names_the_test(tmp_path):
    base = np.random.default_rng(9).gamma(2.0, 20.0, 200)
    noisy = lambda seed: (base + np.random.default_rng(seed).normal(0, 30, 200)).tolist()  # noqa: E731
    clear = [record("a", float(np.mean(base)), per_clip={"mse": base.tolist()}),
             record("b", float(np.mean(base) + 5), per_clip={"mse": (base + 5).tolist()}),
             record("c", float(np.mean(base) + 10), per_clip={"mse": (base + 10).tolist()})]
    for r in clear:
        r["metrics"].pop("ssim")
    board = render("toy-6-6", clear, tmp_path, pictures=False)
    assert "**" in rows_of(board, "a")[0] and "<u>" in rows_of(board, "b")[0]
    assert "paired bootstrap over test clips" in board and "200 test clips" in board and "tested: MSE" in board
    tied = [record(m, float(np.mean(v)), per_clip={"mse": v}) for m, v in (("a", noisy(1)), ("b", noisy(2)))]
    tied.append(record("c", float(np.mean(base) + 40), per_clip={"mse": (base + 40).tolist()}))
    for r in tied:
        r["metrics"].pop("ssim")
    board = render("toy-6-6", tied, tmp_path, pictures=False)
    assert "**" not in board.split("| Model")[1] and "<u>" not in board.split("| Model")[1]
    assert "no mark in MSE: the leading row is not significantly better than every other" in board


def test_seeds_enter_the_test(tmp_path):
    """b beats a by 1 on the same clips; seeds move each row by +-0.1 (marks stand) or +-3 (they do not)."""
    base = np.array(clip_values(0))
    for spread, marked in ((0.1, True), (3.0, False)):
        records = []
        for seed, (shift_a, shift_b) in enumerate(((spread, -spread), (-spread, spread), (0.0, 0.5 * spread))):
            noise = np.random.default_rng(seed).normal(0, 0.5, (2, len(base)))
            a, b = base + 1 + shift_a + noise[0], base + shift_b + noise[1]
            records += [record("a", float(a.mean()), seed=seed, per_clip={"mse": a.tolist()}),
                        record("b", float(b.mean()), seed=seed, per_clip={"mse": b.tolist()})]
        for r in records:
            r["metrics"].pop("ssim")
        board = render("toy-6-6", records, tmp_path, pictures=False)
        (b,) = rows_of(board, "b")
        assert cells(b)[column(board, "MSE ↓")].startswith("**") is marked and cells(b)[column(board, "n")] == "3"


def test_the_board_states_the_budget_once_and_marks_rows_under_another(tmp_path):
    records = [record("a", 10.0), record("b", 11.0), record("c", 12.0, epochs=8), record("d", 13.0, clips=24),
               record("persistence", 50.0, params=0, epochs=0)]
    records[-1]["family"] = "baseline"
    board = render("toy-6-6", records, tmp_path, pictures=False)
    assert board.count("- Budget: 3 epochs x 12 training clips, batch 4") == 1
    assert rows_of(board, "c †") and rows_of(board, "d †") and rows_of(board, "a") and rows_of(board, "persistence")
    assert "† c: trained under another budget: 8 epochs x 12 training clips, batch 4." in board
    assert "† d: trained under another budget: 3 epochs x 24 training clips, batch 4." in board
    timed = [record(m, 10.0 + i, epochs=e, budget={"kind": "seconds", "value": 600, "epochs": e, "train_clips": 12,
                                                    "batch_size": 4}) for i, (m, e) in enumerate((("a", 5), ("b", 9)))]
    board = render("toy-6-6", timed, tmp_path, pictures=False)
    assert "- Budget: 600 s of training wall-clock time per model" in board and "†" not in board
    assert cells(rows_of(board, "b")[0])[column(board, "Epochs")] == "9"


def test_one_model_under_two_budgets_gets_two_rows_that_say_which(tmp_path):
    records = [record("a", 10.0), record("a", 8.0, epochs=6), record("b", 11.0), record("c", 12.0)]
    board = render("toy-6-6", records, tmp_path, pictures=False)
    assert rows_of(board, "a (3 epochs x 12 training clips, batch 4)")
    assert rows_of(board, "a (6 epochs x 12 training clips, batch 4) †")


def test_quick_tables_say_they_are_not_comparable_and_published_rows_sit_beside(tmp_path):
    records = [record("tau", 120.0, 0.48, task="mmnist-10-10", per_frame={}),
               record("persistence", 284.0, 0.65, task="mmnist-10-10")]
    records[0]["metrics"]["ssim_openstl"] = 0.61
    records[0]["metric_info"]["ssim_openstl"] = INFO["ssim_openstl"]
    board = render("mmnist-10-10", records, tmp_path, pictures=False)
    assert "**Not comparable with published figures**: the `quick` profile" in board
    lines = board.splitlines()
    tau = lines.index(rows_of(board, "tau")[0])
    published = cells(lines[tau + 1])
    assert published[0] == "↳ *published [1]*"
    assert published[column(board, "MSE ↓")] == "24.60" and published[column(board, "SSIM (OpenSTL) ↑")] == "0.9454"
    assert published[column(board, "SSIM ↑")] == "–" and published[column(board, "Params (M)")] == "44.7"
    assert "**" not in lines[tau + 1]  # published rows are never ranked
    assert "[1] USTEP (Tan et al., IEEE TPAMI 2025), Table II" in board
    assert "`SSIM (OpenSTL)` uses twice the value range" in board
    paper = render("mmnist-10-10", [dict(r, profile="paper") for r in records], tmp_path, pictures=False)
    assert "Not comparable" not in paper and "↳ *published [1]*" in paper


def test_published_rows_match_overrides(tmp_path):
    records = [record("ustep", 30.0, task="mmnist-10-10", overrides={"delta_t": 2}),
               record("ustep", 31.0, task="mmnist-10-10", overrides={"delta_t": 3})]
    board = render("mmnist-10-10", records, tmp_path, pictures=False)
    lines = board.splitlines()
    two = lines.index(rows_of(board, "ustep (delta_t=2)")[0])
    assert "24.62" in lines[two + 1] and "Table VII" in board
    three = lines.index(rows_of(board, "ustep (delta_t=3)")[0])
    assert "published" not in lines[three + 1]


def test_checkpoint_rows_and_weight_files_are_named(tmp_path):
    a = record("tau", 10.0, evaluation={"hash": "e1", "source": "checkpoint", "checkpoint": {
        "path": "/w/mmnist_tau_one_ep200.pth", "sha256": "abc123", "format": "openstl", "epoch": 200}})
    b = record("tau", 12.0, metric_provenance={"lpips": {"file": "/w/alex.pth", "sha256": "df73285e"}},
               evaluation={"hash": "e2", "source": "trained"})
    again = record("tau", 12.0, seed=1, evaluation={"hash": "e3", "source": "re-evaluated"})
    board = render("toy-6-6", [a, b, again], tmp_path, pictures=False)
    assert rows_of(board, "tau [checkpoint mmnist_tau_one_ep200.pth]")
    assert cells(rows_of(board, "tau")[0])[column(board, "n")] == "2"  # trained and re-evaluated: one row
    assert ("evaluated from checkpoint /w/mmnist_tau_one_ep200.pth (sha256 abc123, format openstl), "
            "not trained here") in board
    assert "weights behind lpips: /w/alex.pth (sha256 df73285e): tau." in board
    assert "†" not in board  # a checkpoint row has no training budget to differ


def test_profiles_get_separate_tables_and_failed_runs_are_listed(tmp_path):
    records = [record("a", 10.0), record("a", 99.0, profile="smoke"),
               record("a", 5.0, created="2026-01-03", overrides={"width": 4}),
               record("b", None, None, created="2026-01-03", status="failed")]
    board = render("toy-6-6", records, tmp_path, pictures=False)
    quick, smoke = board.split("## Profile `smoke`")
    assert "## Profile `quick`" in quick and "99" not in quick and "99.00" in smoke
    assert rows_of(quick, "a (width=4)") and "**5.00**" in rows_of(quick, "a (width=4)")[0]
    assert "b (quick, seed 0): loss became nan" in board


def test_unavailable_and_missing_values_differ(tmp_path):
    a, b = record("a", 10.0), record("b", 11.0)
    a["metrics"]["lpips"] = None
    a["metrics_unavailable"] = {"lpips": "no AlexNet weights: --metric-option lpips_alexnet=PATH"}
    board = render("toy-6-6", [a, b], tmp_path, pictures=False)
    assert cells(rows_of(board, "a")[0])[column(board, "LPIPS ↓")] == "n/a"
    assert cells(rows_of(board, "b")[0])[column(board, "LPIPS ↓")] == "–"
    assert "lpips n/a for a: no AlexNet weights" in board


def test_a_metric_with_a_target_ranks_by_distance_to_it(tmp_path, use_plugins):
    """Records without metric_info: the installed metric spec gives direction and decimals."""
    use_plugins("plugin_fixture", only="testplug")
    from stbench import MetricSpec

    plugins.metrics()["bias"] = MetricSpec("bias", build=None, target=1.0, decimals=2)
    records = [record(m, 10.0) for m in ("a", "b", "c")]
    for r, bias in zip(records, (1.4, 0.95, 0.7)):
        r["metrics"]["bias"] = bias
        del r["metric_info"]
    board = render("toy-6-6", records, tmp_path, pictures=False)
    assert "BIAS →1" in board
    assert "**0.95**" in rows_of(board, "b")[0] and "<u>0.70</u>" in rows_of(board, "c")[0]
    assert "1.40" in rows_of(board, "a")[0] and "<u>1.40" not in rows_of(board, "a")[0]


def test_rows_timed_on_different_hardware_say_which_ran_where(tmp_path):
    a, b, c = (record(m, 10.0) for m in "abc")
    b["hardware"] = dict(b["hardware"], malloc="keep")
    board = render("toy-6-6", [a, c], tmp_path, pictures=False)
    assert "- Hardware: CPU (2 threads). Versions" in board
    board = render("toy-6-6", [a, b, c], tmp_path, pictures=False)
    assert ("- Hardware: timings compare only within a group; CPU (2 threads): a, c; "
            "CPU (2 threads, malloc keep): b. Versions") in board


def save_sample(path, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, inputs=rng.random((6, 1, 16, 16)), truth=rng.random((6, 1, 16, 16)),
             pred=rng.random((6, 1, 16, 16)), vmin=0.0, vmax=1.0)


def test_write_leaderboards_from_records_on_disk_with_pictures(tmp_path):
    for i, model in enumerate(("a", "b")):
        folder = tmp_path / "runs" / "toy-6-6" / model
        folder.mkdir(parents=True)
        save_sample(folder / "sample.npz", seed=i)
        write_json_atomic(folder / "record.json",
                          record(model, 10.0 + i, per_frame={"mse": [1.0, 2.0]}, image_origin="lower",
                                 sample=f"runs/toy-6-6/{model}/sample.npz"))
    (tmp_path / "runs" / "toy-6-6" / "broken").mkdir()
    (tmp_path / "runs" / "toy-6-6" / "broken" / "record.json").write_text("{not json")
    written = write_leaderboards(tmp_path)
    assert written == [tmp_path / "leaderboards" / "toy-6-6.md"]
    board = written[0].read_text()
    for name in ("toy-6-6.quick.per-frame.png", "toy-6-6.quick.strip.png", "toy-6-6.quick.sample.gif"):
        assert f"]({name})" in board and (tmp_path / "leaderboards" / name).stat().st_size > 0
    assert not list(tmp_path.glob("leaderboards/.*tmp*"))
    elsewhere = write_leaderboards(tmp_path, board_dir=tmp_path / "copy")  # records read from a moved-in runs/
    assert elsewhere == [tmp_path / "copy" / "toy-6-6.md"] and (tmp_path / "copy" / "toy-6-6.quick.sample.gif").exists()


def test_committed_boards_render_the_same_with_no_plugin_installed(tmp_path, monkeypatch):
    """A board is a pure function of the records: the committed showcase renders identically with every
    plugin and with none."""
    records = read_records(REPO)
    tasks = sorted({r["task"] for r in records})
    assert tasks, f"no committed run records under {REPO / 'runs'}"
    plugins.reset()
    with_plugins = {t: render(t, [r for r in records if r["task"] == t], tmp_path, pictures=False) for t in tasks}
    monkeypatch.setenv("STBENCH_PLUGINS", "nothing-installed")
    plugins.reset()
    try:
        assert not plugins.models()
        for task in tasks:
            alone = render(task, [r for r in records if r["task"] == task], tmp_path, pictures=False)
            assert alone == with_plugins[task]
    finally:
        monkeypatch.delenv("STBENCH_PLUGINS")
        plugins.reset()


@pytest.mark.parametrize("value, decimals, expected", [(0.9, 4, "0.90"), (0.9454, 4, "0.9454"), (24.6, 2, "24.60"),
                                                       (15.0, None, "15.0"), (7.36, None, "7.36")])
def test_published_figures_keep_the_papers_precision(value, decimals, expected):
    from stbench.leaderboard import _published

    assert _published(value, decimals) == expected


def test_the_board_shows_every_metric_by_lead_time(use_plugins, toy_root, tmp_path):
    """PredBench's by_frame view: per predicted frame, each row's mean over seeds, from the records' per_frame."""
    import json
    from pathlib import Path

    from stbench.cli import main

    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert main(["run", "--models", "tiny", "--tasks", "toy-4-8", "--profile", "smoke", "--data-root", str(toy_root),
                 "--out", str(out), "--seeds", "0,1", "--metrics", "mse,ssim"]) == 0
    board = (out / "leaderboards" / "toy-4-8.md").read_text()
    records = [json.loads(p.read_text()) for p in Path(out, "runs").glob("*/*/record.json")]
    assert "<details><summary>Every metric by lead time" in board
    line = next(l for l in board.splitlines() if l.startswith("| MSE ↓ by lead time"))
    assert line.split("|")[-2].strip() == "t+8"
    row = next(l for l in board.splitlines()[board.splitlines().index(line):] if l.startswith("| tiny"))
    first = sum(r["per_frame"]["mse"][0] for r in records) / len(records)
    assert row.split("|")[2].strip() == f"{first:.2f}"
