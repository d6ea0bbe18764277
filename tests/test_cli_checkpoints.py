"""stbench eval / predict / --save-predictions: checkpoints in through the public command line."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stbench.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "openstl"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())


def _sets(name):
    settings = MANIFEST["settings"]["recurrent" if name.startswith(("convlstm", "predrnn")) else "simvp"]
    return [item for key, value in settings.items() for item in ("--set", f"{key}={json.dumps(value)}")]


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_predict_with_openstl_weights_reproduces_openstl(name, tmp_path, mmnist_root, capsys):
    clips = torch.load(FIXTURES / MANIFEST["input"], weights_only=True)
    np.save(tmp_path / "x.npy", clips["x"].numpy())
    expected = torch.load(FIXTURES / MANIFEST["models"][name]["output"], weights_only=True).numpy()
    assert main(["predict", "--model", name, "--task", MANIFEST["task"], "--checkpoint",
                 str(FIXTURES / MANIFEST["models"][name]["file"]), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "pred.npy"), "--data-root", str(mmnist_root), *_sets(name)]) == 0
    pred = np.load(tmp_path / "pred.npy")
    assert pred.shape == expected.shape
    assert np.abs(pred - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_eval_of_an_openstl_checkpoint_writes_a_record_with_its_provenance(tmp_path, mmnist_root):
    out, path = tmp_path / "out", FIXTURES / MANIFEST["models"]["convlstm"]["file"]
    assert main(["eval", "--models", "convlstm", "--tasks", "mmnist-10-10", "--checkpoint", str(path),
                 "--metrics", "mse,ssim", "--set", "test_samples=8", "--data-root", str(mmnist_root),
                 "--out", str(out), *_sets("convlstm")]) == 0
    (record_path,) = out.glob("runs/mmnist-10-10/*/record.json")
    record = json.loads(record_path.read_text())
    assert "__checkpoint__" in record["run"] and record["status"] == "ok" and record["epochs"] == 0
    evaluation = record["evaluation"]
    assert evaluation["source"] == "checkpoint" and evaluation["checkpoint"]["format"] == "openstl-pth"
    import hashlib

    assert evaluation["checkpoint"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert any("conv_o" in str(item) for item in evaluation["checkpoint"]["dropped"])
    assert "convlstm" in (out / "leaderboards" / "mmnist-10-10.md").read_text()


def _tiny(out, root, *extra):
    return main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(out), *extra])


def test_a_finished_run_is_re_evaluated_by_its_run_folder(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _tiny(out, toy_root) == 0
    (run_dir,) = [p.parent for p in out.glob("runs/toy-6-6/*/record.json")]
    trained = json.loads((run_dir / "record.json").read_text())
    assert main(["eval", "--models", "tiny", "--tasks", "toy-6-6", "--checkpoint", str(run_dir), "--profile", "smoke",
                 "--data-root", str(toy_root), "--out", str(out)]) == 0
    (evaluated,) = [json.loads(p.read_text()) for p in out.glob("runs/toy-6-6/*checkpoint*/record.json")]
    assert evaluated["metrics"] == trained["metrics"]
    assert evaluated["evaluation"]["checkpoint"]["format"] == "stbench"


@pytest.mark.parametrize("make,words", [
    (lambda d: (d / "junk.pt").write_bytes(b"not a checkpoint"), "junk.pt"),
    (lambda d: torch.save({"other.weight": torch.zeros(3)}, d / "junk.pt"), "junk.pt"),
    (lambda d: None, "does not exist"),
])
def test_bad_checkpoints_are_one_line_and_write_nothing(use_plugins, toy_root, tmp_path, capsys, make, words):
    use_plugins("plugin_fixture", only="testplug,baselines")
    make(tmp_path)
    out = tmp_path / "out"
    assert main(["eval", "--models", "tiny", "--tasks", "toy-6-6", "--checkpoint", str(tmp_path / "junk.pt"),
                 "--profile", "smoke", "--data-root", str(toy_root), "--out", str(out), "--no-leaderboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (out / "runs").exists() or not list((out / "runs").rglob("record.json"))


def test_saved_predictions_rescore_to_the_recorded_metrics(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _tiny(out, toy_root, "--save-predictions", "--metrics", "mse,mae") == 0
    (run_dir,) = [p.parent for p in out.glob("runs/toy-6-6/*/record.json")]
    record = json.loads((run_dir / "record.json").read_text())
    pred, true = np.load(run_dir / "predictions.npy"), np.load(run_dir / "targets.npy")
    assert pred.dtype == true.dtype == np.uint8 and pred.shape == true.shape == (record["test_sequences"], 6, 1, 16, 16)
    capsys.readouterr()
    assert main(["score", "--pred", str(run_dir / "predictions.npy"), "--true", str(run_dir / "targets.npy"),
                 "--task", "toy-6-6", "--metrics", "mse,mae", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["mse"] == pytest.approx(record["metrics"]["mse"], rel=0.02)  # 8-bit rounding of predictions
    assert _tiny(out, toy_root, "--save-predictions", "--metrics", "mse,mae") == 0  # already done: kept
