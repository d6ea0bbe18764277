"""Trackers (`--logger mlflow`, `--logger wandb`), offline: a real run logs its settings, every loss, its final
metrics and its prediction strip with the stbench hash as a tag; each tracker's own files are read back."""
import json
import struct
from pathlib import Path

import pytest

from stbench.cli import main
from stbench.logs import flat_params


def _run(out, root, loggers):
    return main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(out), "--metrics", "mse,mae", "--logger", loggers])


def _record(out) -> dict:
    (path,) = list(Path(out).glob("runs/toy-6-6/*/record.json"))
    return json.loads(path.read_text())


def test_settings_flatten_into_parameters():
    assert flat_params({"train": {"lr": 0.1, "betas": [0.9, 0.99]}, "seed": 0, "empty": {}}) == {
        "train.lr": "0.1", "train.betas": "[0.9, 0.99]", "seed": "0", "empty": "{}"}


def test_mlflow_file_store_holds_the_run(use_plugins, toy_root, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'stbench[mlflow]')")
    from mlflow.tracking import MlflowClient

    use_plugins("plugin_fixture", only="testplug,baselines")
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "toys")
    assert _run(tmp_path / "out", toy_root, "csv,mlflow") == 0
    record = _record(tmp_path / "out")
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("toys")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == record["run"] and run.info.status == "FINISHED"
    assert run.data.tags["stbench_hash"] == record["config_hash"] and run.data.tags["model"] == "tiny"
    assert run.data.params["train.lr"] == str(record["train"]["lr"])
    assert run.data.params["hparams." + next(iter(record["hparams"]))] == str(next(iter(record["hparams"].values())))
    losses = client.get_metric_history(run.info.run_id, "train/epoch_loss")
    assert [m.value for m in losses] == pytest.approx(record["train_losses"])
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == record["steps"]
    assert run.data.metrics["test/mse"] == pytest.approx(record["metrics"]["mse"])
    (strip,) = client.list_artifacts(run.info.run_id, "images/strip")
    local = client.download_artifacts(run.info.run_id, strip.path, str(tmp_path / "down"))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mlflow_that_cannot_start_is_one_line(use_plugins, toy_root, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'stbench[mlflow]')")
    use_plugins("plugin_fixture", only="testplug,baselines")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert _run(tmp_path / "out", toy_root, "mlflow") == 2
    err = capsys.readouterr().err
    assert "--logger mlflow: cannot start a run" in err and "MLFLOW_ALLOW_FILE_STORE=true" in err
    assert "Traceback" not in err


def wandb_records(path: Path):
    """The records of a W&B transaction log (``run-<id>.wandb``): a ':W&B' header, then LevelDB-style blocks of
    32 KiB holding chunks (crc, length, type: full / first / middle / last), each record a protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2

    data, at, block, parts = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while at + 7 <= len(data):
        room = block - at % block
        if room < 7:  # a block's tail too short for a chunk header is padding
            at += room
            continue
        _, length, kind = struct.unpack("<IHB", data[at:at + 7])
        if length == 0 and kind == 0:
            at += room
            continue
        parts += data[at + 7:at + 7 + length]
        at += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def test_wandb_offline_run_holds_the_run(use_plugins, toy_root, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'stbench[wandb]')")
    use_plugins("plugin_fixture", only="testplug,baselines")
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                       "WANDB_PROJECT": "toys", "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true"}.items():
        monkeypatch.setenv(key, value)
    assert _run(tmp_path / "out", toy_root, "csv,wandb") == 0
    record = _record(tmp_path / "out")
    (folder,) = list((tmp_path / "wandb").glob("offline-run-*"))  # what 'wandb sync' uploads later
    (log,) = list(folder.glob("run-*.wandb"))
    records = list(wandb_records(log))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == record["run"] and record["config_hash"] in list(run.tags) and run.project == "toys"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["train"]["lr"] == record["train"]["lr"] and config["hparams"] == record["hparams"]
    assert config["config_hash"] == record["config_hash"]
    history = [{(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    epochs = [h["train/epoch_loss"] for h in history if "train/epoch_loss" in h]
    assert epochs == pytest.approx(record["train_losses"])
    assert sum("train/loss" in h for h in history) == record["steps"]
    assert next(h["test/mse"] for h in history if "test/mse" in h) == pytest.approx(record["metrics"]["mse"])
    strip = next(h for h in history if "strip/path" in h)
    assert strip["strip/_type"] == "image-file"
    assert (folder / "files" / strip["strip/path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
