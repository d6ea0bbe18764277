"""PredBench's experiment kinds through `stbench eval` on a finished run: generalisation (weights trained on one
task scored on another of the same frame shape) and temporal-resolution robustness (scored at another frame
interval). The record and the board say the pairing."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stbench.cli import main


def _records(out):
    return [json.loads(p.read_text()) for p in sorted(Path(out, "runs").glob("*/*/record.json"))]


@pytest.fixture
def trained(use_plugins, mmnist_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines,mmnist,mnist_variants")
    out = tmp_path / "train"
    assert main(["run", "--models", "tiny", "--tasks", "mmnist-10-10", "--profile", "smoke", "--data-root",
                 str(mmnist_root), "--out", str(out), "--set", "width=4", "--set", "train_samples=8", "--set",
                 "test_samples=4", "--metrics", "mse"]) == 0
    (record,) = _records(out)
    return mmnist_root, Path(record["checkpoint"]).parent, record


def test_weights_of_a_run_are_scored_on_another_task_and_the_board_says_so(trained, tmp_path):
    root, run, source = trained
    out = tmp_path / "eval"
    assert main(["eval", "--models", "tiny", "--tasks", "mmnist-dynamic-10-10", "--checkpoint", str(run),
                 "--data-root", str(root), "--out", str(out), "--set", "test_samples=4", "--metrics", "mse"]) == 0
    (record,) = _records(out)
    assert record["task"] == "mmnist-dynamic-10-10" and record["profile"] == "smoke"  # the run's profile
    assert record["hparams"]["width"] == 4  # the architecture the weights were trained with
    assert record["evaluation"]["trained_on"] == {"task": "mmnist-10-10", "run": source["run"], "profile": "smoke",
                                                  "seed": 0}
    board = (out / "leaderboards" / "mmnist-dynamic-10-10.md").read_text()
    assert "| tiny (test_samples=4, width=4) [trained on mmnist-10-10]" in board


def test_a_run_is_scored_at_another_frame_interval(trained, tmp_path):
    root, run, _ = trained
    out = tmp_path / "eval"
    common = ["eval", "--models", "tiny", "--tasks", "mmnist-dynamic-10-10", "--checkpoint", str(run), "--data-root",
              str(root), "--out", str(out), "--set", "test_samples=3", "--metrics", "mse"]
    assert main(common + ["--frame-interval", "2"]) == 0
    assert main(common) == 0
    records = {r["evaluation"].get("frame_interval", 1): r for r in _records(out)}
    assert set(records) == {1, 2} and records[2]["run"] != records[1]["run"]
    assert records[2]["metrics"]["mse"] != records[1]["metrics"]["mse"]
    board = (out / "leaderboards" / "mmnist-dynamic-10-10.md").read_text()
    assert "[frame interval 2]" in board
    assert main(["eval", "--models", "tiny", "--tasks", "mmnist-10-10", "--checkpoint", str(run), "--data-root",
                 str(root), "--out", str(out), "--frame-interval", "2"]) == 2  # 40 frames: mmnist holds 20


def test_every_kth_frame_is_what_the_model_sees():
    from stbench.data import EveryKth

    class Counting(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            frames = torch.arange(12.0).view(12, 1, 1, 1)
            return frames[:6], frames[6:]

    x, y = EveryKth(Counting(), 3, t_in=2)[0]
    assert x.flatten().tolist() == [0.0, 3.0] and y.flatten().tolist() == [6.0, 9.0]
    assert np.isfinite(x.numpy()).all()
