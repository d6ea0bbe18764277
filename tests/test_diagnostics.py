"""Degenerate rows: the prediction diagnostics every evaluation records and the board's flags."""
import json
from pathlib import Path

import numpy as np
import pytest

from stbench import diagnostics, leaderboard
from stbench.cli import main


def _clips(seed=0, n=5, t=4):
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(0, 1, size=(n, 3, 2, 8, 8))
    truth = rng.uniform(0, 1, size=(n, t, 2, 8, 8))
    return inputs, truth


def test_statistics_equal_direct_formulas():
    inputs, truth = _clips()
    pred = truth * 0.5 + 0.1
    found = diagnostics.Diagnostics()
    found.update(inputs[:2, -1], pred[:2], truth[:2])  # streamed in two batches
    found.update(inputs[2:, -1], pred[2:], truth[2:])
    values = found.result()
    assert values["pred_spatial_std"] == pytest.approx(pred.reshape(5, 4, 2, -1).std(-1).mean())
    assert values["true_spatial_std"] == pytest.approx(truth.reshape(5, 4, 2, -1).std(-1).mean())
    assert values["pred_temporal_std"] == pytest.approx(pred.std(1).mean())
    assert values["copy_distance"] == pytest.approx(((pred - inputs[:, -1:]) ** 2).mean())
    assert values["persistence_distance"] == pytest.approx(((truth - inputs[:, -1:]) ** 2).mean())
    assert values["flags"] == []  # half the contrast: neither collapsed nor copying


def test_blank_and_copied_predictions_are_flagged():
    inputs, truth = _clips(1)
    blank = diagnostics.Diagnostics()
    blank.update(inputs[:, -1], np.zeros_like(truth), truth)
    assert blank.result()["flags"] == ["collapsed"]
    copied = diagnostics.Diagnostics()
    copied.update(inputs[:, -1], np.repeat(inputs[:, -1:], truth.shape[1], axis=1), truth)
    assert copied.result()["flags"] == ["copying"]
    near = diagnostics.Diagnostics()  # a little motion away from the last frame is still a copy
    near.update(inputs[:, -1], np.repeat(inputs[:, -1:], 4, axis=1) + 0.05 * (truth - inputs[:, -1:]), truth)
    assert near.result()["flags"] == ["copying"]
    perfect = diagnostics.Diagnostics()
    perfect.update(inputs[:, -1], truth, truth)
    assert perfect.result()["flags"] == []
    assert diagnostics.Diagnostics().result() is None


def test_runs_record_diagnostics_and_the_board_flags_them(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert main(["run", "--models", "tiny,persistence", "--tasks", "toy-6-6", "--profile", "smoke",
                 "--data-root", str(toy_root), "--out", str(out)]) == 0
    records = {r["model"]: r for r in (json.loads(p.read_text()) for p in Path(out, "runs").glob("*/*/record.json"))}
    persistence = records["persistence"]["diagnostics"]
    assert persistence["flags"] == ["copying"] and persistence["copy_distance"] == 0
    assert persistence["pred_spatial_std"] == pytest.approx(persistence["true_spatial_std"], rel=0.5)
    assert "flags" in records["tiny"]["diagnostics"]
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    assert "| persistence [copying]" in board and "- Flags: [collapsed] marks" in board
    assert "- [copying] persistence: spatial std" in board and "ratio 0.00; copying below 0.1" in board


def test_older_records_are_diagnosed_from_their_sample_clip(tmp_path):
    inputs, truth = _clips(2, n=1)
    sample = tmp_path / "sample.npz"
    np.savez(sample, inputs=inputs[0], truth=truth[0], pred=np.full_like(truth[0], 0.3))
    record = {"status": "ok", "model": "m", "label": "m", "seed": 0, "sample": str(sample)}
    found = leaderboard.record_diagnostics(record)
    assert found["flags"] == ["collapsed"] and found["from"] == "sample clip"
    flags, notes = leaderboard.row_flags({"label": "m", "records": [record]})
    assert flags == ["collapsed"] and "measured on the one stored sample clip" in notes[0]
    record["diagnostics"] = {**found, "flags": [], "from": None}
    assert leaderboard.row_flags({"label": "m", "records": [record]}) == ([], [])
