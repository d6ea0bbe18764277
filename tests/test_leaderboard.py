import re
from pathlib import Path

from stbench.leaderboard import render, write_leaderboards
from stbench.records import write_json_atomic


def _record(model, profile, mse, ssim, created, status="ok", overrides=None):
    return {"status": status, "run": model, "model": model, "family": "recurrent-free", "task": "toy-6-6", "dataset": "toy",
            "protocol": "equal", "t_in": 6, "t_out": 6, "profile": profile, "seed": 0, "overrides": overrides or {},
            "params": 1_500_000, "macs": 2_250_000_000, "epochs": 3, "train_seconds_per_epoch": 1.5,
            "inference_seconds": 0.25, "fps": 24.0, "metrics": {"mse": mse, "ssim": ssim},
            "data": {"train": {"clips": 12, "source": "train.npy"}, "test": {"clips": 6, "source": "test.npy"}},
            "versions": {"stbench": "0.1.0", "torch": "2.13.0"}, "hardware": {"cpu": "CPU", "cpu_threads": 2},
            "created": created, "error": "loss became nan" if status == "failed" else None}


def _rows(markdown, name):
    return [line for line in markdown.splitlines() if re.match(rf"\| {re.escape(name)} +\|", line)]


def test_best_bold_second_underlined_per_direction(tmp_path):
    records = [_record("a", "quick", 10.0, 0.90, "1"), _record("b", "quick", 20.0, 0.95, "1"),
               _record("c", "quick", 30.0, 0.80, "1")]
    board = render("toy-6-6", records, tmp_path)
    (a,), (b,), (c,) = _rows(board, "a"), _rows(board, "b"), _rows(board, "c")
    assert "**10**" in a and "<u>0.9</u>" in a          # lowest MSE best; second-highest SSIM second
    assert "<u>20</u>" in b and "**0.95**" in b
    assert "**" not in c and "<u>" not in c
    assert "| 1.5 " in a and "| 2.25 " in a             # params in M, FLOPs (MACs) in G
    assert "MSE ↓" in board and "SSIM ↑" in board


def test_profiles_get_separate_tables_and_latest_record_wins(tmp_path):
    records = [_record("a", "quick", 10.0, 0.9, "2026-01-01"), _record("a", "quick", 12.0, 0.9, "2026-01-02"),
               _record("a", "smoke", 99.0, 0.1, "2026-01-01"),
               _record("a", "quick", 5.0, 0.9, "2026-01-03", overrides={"width": 4}),
               _record("b", "quick", None, None, "2026-01-03", status="failed")]
    board = render("toy-6-6", records, tmp_path)
    quick, smoke = board.split("## Profile `smoke`")
    assert "## Profile `quick`" in quick and "99" not in quick and "99" in smoke
    assert len(_rows(quick, "a")) == 1 and "12" in _rows(quick, "a")[0]
    assert _rows(quick, "a (width=4)")
    assert "Failed runs" in board and "b (quick): loss became nan" in board


def test_write_leaderboards_from_records_on_disk(tmp_path):
    for i, model in enumerate(("a", "b")):
        write_json_atomic(tmp_path / "runs" / "toy-6-6" / model / "record.json",
                          _record(model, "smoke", 10.0 + i, 0.5, "1"))
    (tmp_path / "runs" / "toy-6-6" / "broken").mkdir()
    (tmp_path / "runs" / "toy-6-6" / "broken" / "record.json").write_text("{not json")
    written = write_leaderboards(tmp_path)
    assert written == [tmp_path / "leaderboards" / "toy-6-6.md"]
    assert "| a " in Path(written[0]).read_text() and not list(tmp_path.glob("leaderboards/.*tmp*"))


def test_a_metric_with_a_target_ranks_by_distance_to_it(tmp_path, use_plugins):
    use_plugins("plugin_fixture", only="testplug")
    from stbench import MetricSpec, plugins

    plugins.metrics()["bias"] = MetricSpec("bias", build=None, target=1.0)
    records = [_record(m, "quick", 10.0, 0.5, "1") for m in ("a", "b", "c")]
    for record, bias in zip(records, (1.4, 0.95, 0.7)):
        record["metrics"]["bias"] = bias
    board = render("toy-6-6", records, tmp_path)
    assert "BIAS →1" in board
    assert "**0.95**" in _rows(board, "b")[0] and "<u>0.7</u>" in _rows(board, "c")[0]
    assert "1.4 " in _rows(board, "a")[0] and "<u>1.4" not in _rows(board, "a")[0]


def test_rows_timed_on_different_hardware_say_which_ran_where(tmp_path):
    a, b, c = (_record(m, "quick", 10.0, 0.9, "1") for m in "abc")
    b["hardware"] = dict(b["hardware"], malloc="keep")
    board = render("toy-6-6", [a, c], tmp_path)
    assert "- Hardware: CPU (2 threads). Versions" in board
    board = render("toy-6-6", [a, b, c], tmp_path)
    assert ("- Hardware: timings compare only within a group; CPU (2 threads): a, c; "
            "CPU (2 threads, malloc keep): b. Versions") in board
