import json
from pathlib import Path

import numpy as np
import pytest

from stbench.cli import main


def _records(out):
    return [json.loads(p.read_text()) for p in sorted(Path(out, "runs").glob("*/*/record.json"))]


def _run(out, root, *extra):
    return main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(out), *extra])


def test_run_writes_record_and_leaderboard(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert main(["run", "--models", "tiny,persistence", "--tasks", "toy-6-6,toy-4-8", "--profile", "smoke",
                 "--data-root", str(toy_root), "--out", str(out)]) == 0
    records = _records(out)
    assert len(records) == 4
    tiny = next(r for r in records if r["model"] == "tiny" and r["task"] == "toy-6-6")
    assert tiny["status"] == "ok" and tiny["profile"] == "smoke" and tiny["epochs"] == 2
    assert tiny["data"]["train"]["clips"] == 12 and tiny["data"]["test"]["clips"] == 6
    assert tiny["params"] == 8 * 9 + 8 + 8 * 9 + 1
    assert tiny["macs"] == 16 * 16 * 9 * (8 + 8)  # one frame through two convolutions, batch 1
    assert set(tiny["metrics"]) == {"mse", "mae", "ssim", "ssim_openstl", "psnr"}
    assert len(tiny["per_frame"]["mse"]) == 6
    assert tiny["train"]["lr"] == 0.01 and tiny["hparams"]["width"] == 8
    assert tiny["fps"] > 0 and tiny["train_seconds_per_epoch"] > 0
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    assert "## Profile `smoke`" in board and "| tiny" in board and "| persistence" in board
    extended = next(r for r in records if r["model"] == "tiny" and r["task"] == "toy-4-8")
    assert extended["protocol"] == "extended" and len(extended["per_frame"]["mse"]) == 8


def test_training_beats_persistence_and_same_seed_same_metrics(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert main(["run", "--models", "tiny,persistence", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root",
                 str(toy_root), "--out", str(out), "--epochs", "6"]) == 0
    first = {r["model"]: r["metrics"] for r in _records(out)}
    assert first["tiny"]["mse"] < first["persistence"]["mse"]
    assert _run(out, toy_root, "--epochs", "6", "--force") == 0
    again = next(r for r in _records(out) if r["model"] == "tiny")
    assert again["metrics"] == first["tiny"]


def test_interrupted_run_resumes_to_the_same_result(use_plugins, toy_root, tmp_path, monkeypatch, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    reference = tmp_path / "reference"
    assert _run(reference, toy_root, "--epochs", "3") == 0
    expected = _records(reference)[0]["metrics"]

    out = tmp_path / "out"
    monkeypatch.setenv("STBENCH_TEST_INTERRUPT_AT_STEP", "7")  # epoch 3 of 3 (3 steps per epoch)
    assert _run(out, toy_root, "--epochs", "3") == 130
    assert "resume" in capsys.readouterr().err
    assert _records(out) == [] and list(Path(out, "runs").glob("*/*/checkpoint.pt"))
    monkeypatch.delenv("STBENCH_TEST_INTERRUPT_AT_STEP")
    assert _run(out, toy_root, "--epochs", "3") == 0
    record = _records(out)[0]
    assert record["resumed_from_epoch"] == 2
    assert record["metrics"] == expected


def test_nan_loss_marks_the_run_failed_and_others_go_on(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    code = main(["run", "--models", "tiny,persistence", "--tasks", "toy-6-6", "--profile", "smoke", "--set",
                 "nan_loss=true", "--data-root", str(toy_root), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "loss became nan" in err and "Traceback" not in err
    status = {r["model"]: r["status"] for r in _records(out)}
    assert status == {"tiny": "failed", "persistence": "ok"}
    assert "Failed runs" in (out / "leaderboards" / "toy-6-6.md").read_text()


def test_completed_run_is_not_repeated_without_force(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root) == 0
    before = _records(out)[0]["created"]
    assert _run(out, toy_root) == 0
    assert "already done" in capsys.readouterr().err
    assert _records(out)[0]["created"] == before


def test_override_shows_in_record_and_leaderboard(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--set", "width=4") == 0
    record = _records(out)[0]
    assert record["overrides"] == {"width": 4} and record["hparams"]["width"] == 4
    assert record["params"] == 4 * 9 + 4 + 4 * 9 + 1
    assert "tiny (width=4)" in (out / "leaderboards" / "toy-6-6.md").read_text()


def test_profile_json(use_plugins, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert main(["profile", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["model"] == "tiny" and rows[0]["task"] == "toy-6-6"
    assert rows[0]["params"] == 153 and rows[0]["macs"] == 16 * 16 * 9 * 16


def test_score_matches_the_metrics(tmp_path, use_plugins, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    rng = np.random.default_rng(0)
    true = rng.random((5, 6, 1, 16, 16)).astype(np.float32)
    pred = np.clip(true + 0.1 * rng.standard_normal(true.shape), 0, 1).astype(np.float32)
    np.save(tmp_path / "p.npy", pred)
    np.save(tmp_path / "t.npy", true)
    assert main(["score", "--pred", str(tmp_path / "p.npy"), "--true", str(tmp_path / "t.npy"), "--task",
                 "toy-4-6", "--metrics", "mse,mae", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["mse"] == pytest.approx(((pred - true) ** 2).sum(axis=(2, 3, 4)).mean(), rel=1e-6)
    assert values["mae"] == pytest.approx(np.abs(pred - true).sum(axis=(2, 3, 4)).mean(), rel=1e-6)


BAD = [
    (["run", "--models", "tinny", "--tasks", "toy-6-6"], "unknown model 'tinny' (did you mean tiny"),
    (["run", "--models", "tiny", "--tasks", "tooy-6-6"], "unknown dataset 'tooy'"),
    (["run", "--models", "tiny", "--tasks", "toy-six-6"], "malformed task"),
    (["run", "--models", "tiny", "--tasks", "toy-0-6"], "at least 1"),
    (["run", "--models", "tiny", "--tasks", "toy-10-10"], "at most 12"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "quik"], "unknown profile 'quik'"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--metrics", "mse,ssmi"], "unknown metric 'ssmi'"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "widht=3"], "did you mean width"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "novalue"], "KEY=VALUE"),
    (["run", "--models", "", "--tasks", "toy-6-6"], "at least one name"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "width=wide"], "width must be a whole number"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "lr=-1"], "lr must be a number > 0"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "lr=fast"], "lr must be a number"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "batch_size=0"], "batch_size must be a whole number >= 1"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "train_samples=2.5"], "train_samples must be a whole"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "grad_clip=0"], "grad_clip must be a number > 0"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "optimizer=adamm"], "optimizer must be one of"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--epochs", "-1"], "epochs must be a whole number >= 0"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--set", "epochs=-1"], "epochs must be a whole number >= 0"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--device", "gpu"], "expected cpu, cuda, cuda:N or mps"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--device", "cuda:7"], "--device cuda:7"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--seed", "-3"], "seed must be a whole number >= 0"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--seed", str(2 ** 63)], "at most 2**63-1"),
    (["run", "--models", "tiny", "--tasks", "toy-6-6", "--seeds", "0,x"], "seed must be a whole number"),
    (["list", "things"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_is_one_line_and_exit_2(use_plugins, argv, message, capsys, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert main(argv + (["--out", str(tmp_path)] if argv[0] == "run" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_missing_data_is_reported_and_the_run_skipped(use_plugins, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "out", tmp_path / "nowhere") == 2
    err = capsys.readouterr().err
    assert "missing" in err and "toy/{train,test}.npy" in err and "Traceback" not in err


def test_other_metrics_re_evaluate_the_finished_run_without_training(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--metrics", "mse") == 0
    first = _records(out)[0]
    capsys.readouterr()
    assert _run(out, toy_root, "--metrics", "mse,mae") == 0
    err = capsys.readouterr().err
    (second,) = _records(out)
    assert "epoch 1/" not in err and "already done" not in err  # no training, and not the old metrics
    assert second["run"] == first["run"] and second["config_hash"] == first["config_hash"]
    assert set(second["metrics"]) == {"mse", "mae"} and second["metrics"]["mse"] == first["metrics"]["mse"]
    assert second["evaluation"]["source"] == "re-evaluated" and second["train_losses"] == first["train_losses"]
    kept = list((out / "runs" / "toy-6-6" / first["run"] / "evaluations").glob("record.*.json"))
    assert len(kept) == 1 and set(json.loads(kept[0].read_text())["metrics"]) == {"mse"}  # nothing lost
    assert _run(out, toy_root, "--metrics", "mse,mae") == 0 and "already done" in capsys.readouterr().err
    assert _run(out, toy_root, "--metrics", "mse,mae", "--force") == 0
    assert "epoch 1/" in capsys.readouterr().err and _records(out)[0]["evaluation"]["source"] == "trained"


def test_test_clips_are_evaluation_identity_not_training_identity(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--set", "test_samples=3") == 0
    assert _run(out, toy_root, "--set", "test_samples=6") == 0
    (record,) = _records(out)  # the same run folder: the weights do not depend on the test clips
    assert record["test_sequences"] == 6 and record["evaluation"]["source"] == "re-evaluated"


def test_seeds_make_one_run_each(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--seeds", "0,1") == 0
    assert sorted(r["seed"] for r in _records(out)) == [0, 1]
    assert _run(out, toy_root, "--repeats", "3", "--seed", "1") == 0
    assert sorted(r["seed"] for r in _records(out)) == [0, 1, 2, 3]


@pytest.mark.parametrize("make,message", [
    (lambda d: (d / "p.npy").write_bytes(b"garbage"), "not a readable .npy"),
    (lambda d: np.save(d / "p.npy", np.zeros((2, 6, 1, 16, 16), np.float32)), "must match"),
    (lambda d: np.save(d / "p.npy", np.zeros((3, 6, 1, 16), np.float32)), "expected [N, T, C, H, W]"),
    (lambda d: np.save(d / "p.npy", np.zeros((0, 6, 1, 16, 16), np.float32)), "the array is empty"),
    (lambda d: np.save(d / "p.npy", np.full((3, 6, 1, 16, 16), "x")), "are not numbers"),
    (lambda d: np.save(d / "p.npy", np.zeros((3, 6, 1, 16, 16), np.int64)), "int64 values for data in [0, 1]"),
    (lambda d: np.save(d / "p.npy", np.full((3, 6, 1, 16, 16), np.nan, np.float32)), "NaN or inf"),
    (lambda d: np.savez(d / "p.npz", a=np.zeros((3, 6, 1, 16, 16)), b=np.zeros(1)), "holds the arrays a, b"),
])
def test_bad_score_inputs(use_plugins, tmp_path, capsys, make, message):
    use_plugins("plugin_fixture", only="testplug,baselines")
    np.save(tmp_path / "t.npy", np.zeros((3, 6, 1, 16, 16), np.float32))
    make(tmp_path)
    pred = tmp_path / ("p.npz" if (tmp_path / "p.npz").exists() else "p.npy")
    assert main(["score", "--pred", str(pred), "--true", str(tmp_path / "t.npy"), "--task", "toy-6-6"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_score_reads_npz_keys_and_uint8_frames_and_json_names_unavailable_metrics(use_plugins, tmp_path, capsys,
                                                                                   monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines,metrics_perceptual,stbench-metrics-perceptual")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    monkeypatch.delenv("STBENCH_LPIPS_ALEXNET", raising=False)
    rng = np.random.default_rng(1)
    true = rng.integers(0, 256, (4, 6, 1, 16, 16), dtype=np.uint8)
    pred = rng.integers(0, 256, (4, 6, 1, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "both.npz", pred=pred, true=true)
    assert main(["score", "--pred", f"{tmp_path / 'both.npz'}:pred", "--true", f"{tmp_path / 'both.npz'}:true",
                 "--task", "toy-6-6", "--metrics", "mse", "--json"]) == 0
    captured = capsys.readouterr()
    expected = (((pred / 255.0) - (true / 255.0)) ** 2).sum(axis=(2, 3, 4)).mean()
    assert json.loads(captured.out)["mse"] == pytest.approx(expected, rel=1e-5)
    assert "read as value / 255" in captured.err
    np.save(tmp_path / "p.npy", pred / 255.0)
    np.save(tmp_path / "t.npy", true / 255.0)
    assert main(["score", "--pred", str(tmp_path / "p.npy"), "--true", str(tmp_path / "t.npy"), "--task", "toy-6-6",
                 "--metrics", "mse,lpips", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)  # valid JSON even with a metric that cannot be computed here
    assert values["lpips"] is None and values["unavailable"]["lpips"]


def test_score_wrong_task_length(use_plugins, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    for name in ("p", "t"):
        np.save(tmp_path / f"{name}.npy", np.zeros((3, 5, 1, 16, 16), np.float32))
    assert main(["score", "--pred", str(tmp_path / "p.npy"), "--true", str(tmp_path / "t.npy"),
                 "--task", "toy-6-6"]) == 2
    assert "do not fit toy-6-6" in capsys.readouterr().err


def test_weights_lists_what_each_metric_can_use(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("STBENCH_LPIPS_ALEXNET", raising=False)
    monkeypatch.delenv("STBENCH_FVD_I3D", raising=False)
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "alexnet-owt-7be5be79.pth" in out and "missing" in out and "get it" in out
    assert main(["weights", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"lpips", "fvd"} <= set(listing) and all("how_to_get" in item for item in listing["lpips"])


def test_quick_gives_every_model_the_same_budget(use_plugins):
    use_plugins("plugin_fixture", only="testplug,baselines")
    from stbench import DatasetSpec, ModelSpec
    from stbench.config import TRAIN_DEFAULTS, resolve
    from stbench.planning import plan_run

    spec = ModelSpec(name="m", family="baseline", build=None,
                     hparams={"quick": {"default": {"epochs": 9, "train_samples": 50, "lr": 0.5}}})
    dataset = DatasetSpec(name="d", shape=(1, 8, 8), open=None, max_length=20, layout="")
    train, _, _ = resolve(spec, dataset, "quick", {})
    assert train["epochs"] == TRAIN_DEFAULTS["quick"]["epochs"] and train["train_samples"] == 2000
    assert train["lr"] == 0.5  # what is not budget still comes from the model
    train, _, _ = resolve(spec, dataset, "quick", {"epochs": 4})
    assert train["epochs"] == 4  # the user may still override
    assert plan_run("tiny", "toy-6-6", "smoke").parts[0].train["epochs"] == 2  # smoke keeps declarations


@pytest.mark.parametrize("budget,check", [
    ("epochs=3", lambda r: r["epochs"] == 3 and r["budget"]["kind"] == "epochs"),
    ("macs=1e7", lambda r: r["budget"]["kind"] == "macs" and r["budget"]["estimate"]["training_macs_per_epoch"] > 0),
    ("seconds=0.5", lambda r: r["budget"]["kind"] == "seconds" and r["budget"]["estimate"]["seconds_per_step"] > 0),
])
def test_budget_is_applied_and_recorded(use_plugins, toy_root, tmp_path, budget, check):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--budget", budget) == 0
    record = _records(out)[0]
    assert check(record), record["budget"]
    assert record["budget"]["epochs"] == record["epochs"] and record["budget"]["train_clips"] > 0
    assert _run(out, toy_root, "--budget", budget) == 0  # converted once: the rerun finds the same run done


def test_bad_budget_is_one_line(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    for bad in ("hours=3", "epochs=1.5", "macs=lots", "seconds=-1"):
        assert _run(tmp_path / "out", toy_root, "--budget", bad) == 2
        assert "--budget" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_writes_nothing(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert main(["run", "--models", "tiny,persistence", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root",
                 str(toy_root), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "tiny toy-6-6 smoke seed 0" in printed and "state       new" in printed
    assert "found: 12 training clips, 6 test clips" in printed and "estimate" in printed
    assert '"epochs": 2' in printed and "estimated total" in printed
    assert not out.exists()
    assert main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root",
                 str(tmp_path / "nowhere"), "--out", str(out), "--dry-run"]) == 0
    assert "MISSING" in capsys.readouterr().out


def test_config_file_takes_the_command_line_options(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(f"models: [tiny, persistence]\ntasks: toy-6-6\nprofile: smoke\ndata-root: {toy_root}\n"
                      f"out: {out}\nset: {{width: 4}}\nseeds: [0, 1]\nmetrics: [mse]\n")
    assert main(["run", "--config", str(config)]) == 0
    records = _records(out)
    assert sorted((r["model"], r["seed"]) for r in records) == [("persistence", 0), ("persistence", 1),
                                                                ("tiny", 0), ("tiny", 1)]
    assert all(set(r["metrics"]) == {"mse"} for r in records)
    assert next(r for r in records if r["model"] == "tiny")["hparams"]["width"] == 4
    assert main(["run", "--config", str(config), "--metrics", "mae", "--seeds", "0"]) == 0  # the command line wins
    assert {r["seed"] for r in _records(out) if "mae" in r["metrics"]} == {0}
    config.write_text("modles: [tiny]\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "unknown option 'modles' (did you mean models" in capsys.readouterr().err


def test_the_default_out_is_a_workspace_git_ignores(use_plugins, toy_root, tmp_path, monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--models", "persistence", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root",
                 str(toy_root)]) == 0
    assert list((tmp_path / "stbench-out" / "runs").rglob("record.json"))
    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().splitlines()
    assert "/stbench-out/" in ignored


def test_progress_lines_count_runs_when_stderr_is_not_a_terminal(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "out", toy_root, "--seeds", "0,1,2") == 0
    err = capsys.readouterr().err
    assert "[1/3] tiny toy-6-6 smoke seed 0 (0 done, 3 left, ETA after the first run)" in err
    assert "[3/3] tiny toy-6-6 smoke seed 2 (2 done, 1 left, ETA" in err


def test_precision_and_workers_are_applied_and_recorded(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--precision", "bf16-mixed", "--workers", "1") == 0
    assert _run(out, toy_root) == 0
    records = {r["precision"]: r for r in _records(out)}
    assert set(records) == {"32", "bf16-mixed"}  # precision is part of the run's identity: two runs
    assert records["bf16-mixed"]["loading"] == {"workers": 1, "pin_memory": False, "persistent_workers": False}
    assert records["32"]["loading"]["workers"] == 0  # the CPU default
    assert records["bf16-mixed"]["metrics"]["mse"] != records["32"]["metrics"]["mse"]
    assert records["32"]["distributed"]["world_size"] == 1


@pytest.mark.slow
def test_missing_data_is_one_line_per_task_and_starts_nothing_for_it(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out, empty = tmp_path / "out", tmp_path / "empty"
    empty.mkdir()
    (toy_root / "toy" / "test.npy").rename(tmp_path / "kept.npy")  # the toy task of this root lacks its test split
    assert main(["run", "--models", "tiny,persistence", "--tasks", "toy-6-6,toy-4-8", "--profile", "smoke",
                 "--data-root", str(toy_root), "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stbench: error")]
    assert len(errors) == 2  # one per task, not one per (model, task)
    assert errors[0].startswith("stbench: error: toy-6-6 (2 runs not started): missing ")
    assert not _records(out) and not list(out.glob("leaderboards/*.md"))
    (tmp_path / "kept.npy").rename(toy_root / "toy" / "test.npy")
    (toy_root / "toy" / "train.npy").unlink()  # training data gone: eval needs only the test split
    assert main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(toy_root),
                 "--out", str(out), "--launcher", "local"]) == 2
    assert "stbench: error: toy-6-6 (1 run not started): " in capsys.readouterr().err and not _records(out)
