"""Run logs: CSV and TensorBoard event files beside each record, the same numbers in both."""
import csv
from pathlib import Path

import pytest

from stbench.cli import main
from stbench.logs import crc32c, read_event_file


def _run(out, root, *extra):
    return main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(out), "--metrics", "mse,mae", *extra])


def _rows(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_crc32c_is_the_castagnoli_checksum():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C
    assert crc32c(b"") == 0


def test_a_run_logs_every_step_and_epoch_and_its_metrics(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root) == 0
    (run_dir,) = [p.parent for p in out.glob("runs/toy-6-6/*/record.json")]
    rows = _rows(run_dir)
    losses = [r for r in rows if r["name"] == "train/loss"]
    assert [int(r["step"]) for r in losses] == list(range(1, len(losses) + 1)) and len(losses) == 6  # 2 epochs x 3
    epochs = [float(r["value"]) for r in rows if r["name"] == "train/epoch_loss"]
    import json

    record = json.loads((run_dir / "record.json").read_text())
    assert epochs == pytest.approx(record["train_losses"])
    assert float(next(r for r in rows if r["name"] == "test/mse")["value"]) == pytest.approx(record["metrics"]["mse"])
    (events,) = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    scalars = read_event_file(events)
    from_tb = [(e["step"], e["value"]) for e in scalars if e["tag"] == "train/loss"]
    assert from_tb == [(int(r["step"]), pytest.approx(float(r["value"]), rel=1e-6)) for r in losses]
    assert any(e["tag"] == "test/mse" for e in scalars)


def test_tensorboard_reads_the_event_files_when_installed(use_plugins, toy_root, tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "out", toy_root) == 0
    (folder,) = list(tmp_path.glob("out/runs/toy-6-6/*/tensorboard"))
    events = accumulator.EventAccumulator(str(folder))
    events.Reload()
    assert len(events.Scalars("train/loss")) == 6


def test_a_resumed_run_logs_each_step_once(use_plugins, toy_root, tmp_path, monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    monkeypatch.setenv("STBENCH_TEST_INTERRUPT_AT_STEP", "4")
    assert _run(out, toy_root) == 130
    monkeypatch.delenv("STBENCH_TEST_INTERRUPT_AT_STEP")
    assert _run(out, toy_root) == 0
    (run_dir,) = [p.parent for p in out.glob("runs/toy-6-6/*/record.json")]
    steps = [int(r["step"]) for r in _rows(run_dir) if r["name"] == "train/loss"]
    assert steps == list(range(1, 7))


def test_loggers_are_checked_and_optional_ones_imported_only_when_asked(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "a", toy_root, "--logger", "none") == 0
    assert not list(Path(tmp_path / "a").rglob("log.csv")) and not list(Path(tmp_path / "a").rglob("tensorboard"))
    assert _run(tmp_path / "b", toy_root, "--logger", "csv,tensorbored") == 2
    assert "--logger tensorbored" in capsys.readouterr().err
    try:
        import mlflow  # noqa: F401
    except ImportError:
        assert _run(tmp_path / "c", toy_root, "--logger", "mlflow") == 2
        assert "mlflow is not installed" in capsys.readouterr().err
