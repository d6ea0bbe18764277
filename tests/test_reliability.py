"""Reliability and security: nothing runs from files stbench reads, one failing run never stops the others,
nothing written is lost on a full disk, names stay inside --out, bad records are reported, shared --out."""
import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stbench.cli import main

HERE = Path(__file__).parent


def _records(out):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(out, "runs").glob("*/*/record.json"))}


def _run(out, root, *extra, models="tiny"):
    return main(["run", "--models", models, "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(out), *extra])


class Payload:
    """Pickled, this object runs a command when it is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_checkpoint_runs_no_code_and_the_run_trains_from_the_start(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    from stbench.planning import plan_run

    out, marker = tmp_path / "out", tmp_path / "PWNED"
    checkpoint = plan_run("tiny", "toy-6-6", "smoke").checkpoint_path(out)
    checkpoint.parent.mkdir(parents=True)
    torch.save({"model": Payload(marker), "epoch": 1, "config_hash": "x"}, checkpoint)
    assert _run(out, toy_root) == 0
    assert not marker.exists()
    assert "cannot be used" in capsys.readouterr().err
    assert list(checkpoint.parent.glob("checkpoint.pt.unreadable-*"))  # kept aside, not deleted
    assert next(iter(_records(out).values()))["status"] == "ok"


@pytest.mark.parametrize("fault,reason", [("wrong_shape", "forward(x, t_out) returned"), ("crash", "RuntimeError: a bug in the plugin"),
                                          ("nan_predictions", "NaN or inf")])
def test_one_failing_run_never_stops_the_others(use_plugins, toy_root, tmp_path, capsys, fault, reason):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--set", f"fault={fault}", models="tiny,persistence") == 2
    err = capsys.readouterr().err
    assert reason in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    records = {r["model"]: r for r in _records(out).values()}
    assert records["persistence"]["status"] == "ok"
    assert records["tiny"]["status"] == "failed" and reason in records["tiny"]["error"]
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    assert "Failed runs" in board and "nan" not in board.split("Failed runs")[0].lower().replace("n/a", "")


def test_debug_shows_the_traceback(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "out", toy_root, "--set", "fault=crash", "--debug") == 2
    assert "Traceback" in capsys.readouterr().err


def test_an_out_that_cannot_be_written_is_one_line(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    (tmp_path / "file").write_text("not a folder")
    assert _run(tmp_path / "file" / "out", toy_root) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) <= 2, err


def _valid(out):
    """Every file stbench wrote under ``out`` is whole: records and boards parse, arrays and pictures load."""
    for path in Path(out).rglob("*"):
        if path.name.startswith(".") and ".tmp" in path.name:
            raise AssertionError(f"temporary file left behind: {path}")
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                list(data.values())
        elif path.suffix == ".png":
            import matplotlib.image

            matplotlib.image.imread(path)
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".md":
            assert path.read_text().startswith("# Leaderboard")


def test_a_full_disk_at_each_write_in_turn_loses_nothing(use_plugins, toy_root, tmp_path, monkeypatch, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    reference = tmp_path / "reference"
    assert _run(reference, toy_root) == 0
    expected = next(iter(_records(reference).values()))["metrics"]
    real_replace, calls = os.replace, []

    def counting(src, dst):
        calls.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", counting)
    probe = tmp_path / "probe"
    assert _run(probe, toy_root, models="persistence") == 0
    calls.clear()
    assert _run(probe, toy_root) == 0
    writes = len(calls)
    assert writes >= 5  # checkpoints, sample, record, board (and pictures, when matplotlib draws them)
    for k in range(writes):
        out = tmp_path / f"full{k}"
        monkeypatch.setattr(os, "replace", real_replace)
        assert _run(out, toy_root, models="persistence") == 0
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".png", ".npz")}
        count = [0]

        def full_disk(src, dst, k=k):
            count[0] += 1
            if count[0] == k + 1:
                raise OSError(errno.ENOSPC, "No space left on device", str(dst))
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", full_disk)
        assert _run(out, toy_root) == 2, k
        monkeypatch.setattr(os, "replace", real_replace)
        err = capsys.readouterr().err
        assert "Traceback" not in err and "no space left on" in err
        _valid(out)
        persistence = [p for p in before if "persistence" in str(p)]
        assert persistence and all(p.read_bytes() == before[p] for p in persistence)  # nothing written is lost
        assert _run(out, toy_root) == 0  # space again: the run finishes, with the uninterrupted metrics
        assert {r["model"]: r for r in _records(out).values()}["tiny"]["metrics"] == expected
        _valid(out)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_bad_records_are_reported_in_one_line_each_and_skipped(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, models="persistence") == 0
    good = next(Path(out, "runs").glob("*/*/record.json"))
    record = json.loads(good.read_text())
    _write(out / "runs" / "toy-6-6" / "truncated" / "record.json", good.read_text()[:50])
    _write(out / "runs" / "toy-6-6" / "list" / "record.json", "[1, 2]")
    _write(out / "runs" / "toy-6-6" / "partial" / "record.json", json.dumps({"status": "ok"}))
    _write(out / "runs" / "toy-6-6" / "escape" / "record.json", json.dumps(dict(record, task="../../x")))
    capsys.readouterr()
    assert main(["leaderboard", "--out", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    for name, words in (("truncated", "not valid JSON"), ("list", "not an object"), ("partial", "lacks the field"),
                        ("escape", "not allowed")):
        assert any(name in line and words in line for line in err), (name, err)
    assert not (tmp_path / "x.md").exists() and not list(tmp_path.rglob("x.md"))
    assert "| persistence" in (out / "leaderboards" / "toy-6-6.md").read_text()
    assert _run(out, toy_root, models="persistence") == 0  # stbench run goes on too


def test_a_plugin_name_that_is_a_path_is_refused(use_plugins, tmp_path, capsys, monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    from stbench import ModelSpec, plugins

    plugins.registries()
    from stbench.plugins import _collect, pm

    class Evil:
        @staticmethod
        def stbench_register_models(register):
            register(ModelSpec(name="../evil", family="baseline", build=None))

    from stbench.hookspecs import hookimpl

    Evil.stbench_register_models = hookimpl(Evil.stbench_register_models)
    pm.register(Evil, name="evil")
    try:
        registry = _collect("stbench_register_models")
        assert "../evil" not in registry
        assert any(name == "evil" and "not allowed" in error for name, error in plugins.failures)
    finally:
        pm.unregister(name="evil")


def test_plugins_variable_naming_nothing_installed_says_so(use_plugins, capsys):
    use_plugins("plugin_fixture", only="nothing-like-this")
    assert main(["list", "models"]) == 0
    err = capsys.readouterr().err.strip()
    assert "STBENCH_PLUGINS names nothing-like-this, which is not installed" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------- processes sharing one --out

def _cli(out, root, *extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE / "plugin_fixture"), os.environ.get("PYTHONPATH", "")]),
               STBENCH_PLUGINS="testplug,baselines", OMP_NUM_THREADS="1")
    return [sys.executable, "-m", "stbench", "run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke",
            "--data-root", str(root), "--out", str(out), *extra], env


@pytest.mark.slow
def test_four_processes_into_one_out(toy_root, tmp_path):
    out = tmp_path / "out"
    runs = [_cli(out, toy_root, "--seed", seed) for seed in ("0", "0", "1", "2")]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv, env in runs]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    records = _records(out)
    assert sorted(r["seed"] for r in records.values()) == [0, 1, 2]
    assert all(r["status"] == "ok" for r in records.values())
    seed0 = [err for argv, (_, err) in zip(runs, results) if argv[0][argv[0].index("--seed") + 1] == "0"]
    trained = [err for err in seed0 if "epoch 1/" in err]
    assert len(trained) == 1, seed0  # the same run was trained once; the other waited and found it done
    _valid(out)
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    assert "| tiny" in board


# ---------------------------------------------------------------- kill -9 at random points

def _killed_at(argv, env, point, report):
    """Start the run, wait until it reports that it reached ``point`` ("train:<step>" or "evaluate:0") and holds
    there (the test plugin's ``hold_if_asked``), then kill -9 it."""
    import time

    report.unlink(missing_ok=True)
    proc = subprocess.Popen(argv, env=dict(env, STBENCH_TEST_HOLD=point, STBENCH_TEST_HOLD_REPORT=str(report)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (report.exists() and report.read_text()) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no handler runs
    _, err = proc.communicate()
    assert report.exists() and report.read_text() == point, f"the run never reached {point}: {err[-2000:]}"
    assert proc.returncode == -9, proc.returncode  # killed there, not finished or failed


def _checkpoint_epoch(out):
    found = list(Path(out, "runs").glob("*/*/checkpoint.pt"))
    return torch.load(found[0], weights_only=True)["epoch"] if found else None


@pytest.mark.slow
def test_kill_9_in_training_and_in_evaluation_then_resume_gives_the_uninterrupted_metrics(toy_root, tmp_path):
    """Three steps per epoch, four epochs: each kill lands where its run reported holding, and the files it leaves
    say so (no checkpoint in the first epoch, two epochs' checkpoint in the third, every epoch's during evaluation
    and no record yet); the resumed run starts from that checkpoint and ends with the uninterrupted metrics."""
    argv, env = _cli(tmp_path / "clean", toy_root, "--set", "epochs=4")
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    expected = next(iter(_records(tmp_path / "clean").values()))["metrics"]
    report = tmp_path / "reached"
    for trial, kills in enumerate([[("train:1", None), ("train:7", 2)], [("evaluate:0", 4)]]):
        out = tmp_path / f"trial{trial}"
        argv, env = _cli(out, toy_root, "--set", "epochs=4")
        for point, epochs_saved in kills:
            _killed_at(argv, env, point, report)
            _valid_or_partial(out)
            assert _checkpoint_epoch(out) == epochs_saved, point
            assert not _records(out), point  # the record comes after evaluation
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        record = next(iter(_records(out).values()))
        assert record["resumed_from_epoch"] == kills[-1][1] and record["metrics"] == expected
        _valid(out)


def _valid_or_partial(out):
    """After a kill -9 every whole file is valid; only temporary files may be left (the next run clears them)."""
    for path in Path(out).rglob("*"):
        if path.is_file() and not (path.name.startswith(".") and ".tmp" in path.name):
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".pt":
                torch.load(path, weights_only=True)


def test_a_missing_optional_package_is_one_line_naming_the_install():
    import json

    from stbench import UserError, require

    assert require("json", "anything", "json") is json
    with pytest.raises(UserError, match=r"^the foo dataset needs foo and bar: pip install foo bar$"):
        require("stbench_no_such_module", "the foo dataset", "foo bar")


# ---------------------------------------------------------------- library warnings

def test_library_warnings_go_to_the_runs_log_and_debug_shows_them(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--set", "fault=warn", "--no-leaderboard") == 0
    err = capsys.readouterr().err
    assert "zero-element" not in err and "UserWarning" not in err, err  # no raw warning on the terminal
    log = next(out.rglob("warnings.log")).read_text()
    assert "UserWarning: Initializing zero-element tensors is a no-op" in log
    assert "1 library warning kept off the terminal" in err and "warnings.log" in err and "--debug" in err
    assert _run(out, toy_root, "--set", "fault=warn", "--no-leaderboard", "--force", "--debug") == 0
    assert "UserWarning: Initializing zero-element tensors is a no-op" in capsys.readouterr().err
    assert next(out.rglob("warnings.log")).read_text().count("zero-element") == 2


# ---------------------------------------------------------------- budgets a person would not ask for

def test_a_budget_of_weeks_or_more_clips_than_the_data_says_so_in_one_line_before_it_starts(
        use_plugins, toy_root, tmp_path, capsys, monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    monkeypatch.setenv("STBENCH_TEST_INTERRUPT_AT_STEP", "7")  # stop it in its third epoch (after the timed steps)
    code = _run(tmp_path / "out", toy_root, "--set", "train_samples=1000000000", "--set", "epochs=100000000",
                "--no-leaderboard")
    assert code == 130  # it started (warned, not refused), and Ctrl-C stopped it
    err = capsys.readouterr().err.splitlines()
    said = [line for line in err if "train_samples=" in line or "will take" in line]
    assert len(said) == 1, err
    line = said[0]
    assert line.startswith("stbench: warning: tiny toy-6-6 smoke seed 0: ")
    assert "train_samples=1,000,000,000 asks for more clips than toy has for toy-6-6 (12 training clips): it will " \
           "use 12" in line
    assert re.search(r"it will take about [\d.,]+ (days|years) on cpu \(300,000,000 training steps of 4 clips at "
                     r"[\d.]+ ms each, timed here\)", line), line
    assert err.index(line) < next(i for i, text in enumerate(err) if "epoch 1/" in text)  # before the first epoch


def test_an_ordinary_run_says_nothing_and_a_note_names_what_it_will_use(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "out", toy_root, "--no-leaderboard") == 0
    assert "asks for" not in capsys.readouterr().err and "will take" not in capsys.readouterr().err
    assert _run(tmp_path / "out", toy_root, "--no-leaderboard", "--set", "test_samples=50") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "asks for" in line]
    assert notes == ["stbench: note: tiny toy-6-6 smoke seed 0: test_samples=50 asks for more clips than toy has "
                     "for toy-6-6 (6 test clips): it will use 6"]


def test_timing_before_a_run_changes_nothing_it_does(use_plugins, toy_root, tmp_path, monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    import stbench.estimates

    assert _run(tmp_path / "plain", toy_root, "--no-leaderboard") == 0
    monkeypatch.setattr(stbench.estimates, "TIMED_FROM_STEPS", 1)  # time this small run too
    timed = []
    real = stbench.estimates.time_training_step
    monkeypatch.setattr(stbench.estimates, "time_training_step", lambda *a, **k: timed.append(1) or real(*a, **k))
    assert _run(tmp_path / "timed", toy_root, "--no-leaderboard") == 0
    assert timed
    plain, after = (next(iter(_records(tmp_path / name).values())) for name in ("plain", "timed"))
    assert after["metrics"] == plain["metrics"] and after["train_losses"] == plain["train_losses"]


# ---------------------------------------------------------------- its own damaged files

@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00garbled\x80\x81", b"a,b,c\n1,2,3\n",
                                     b"step,epoch,name,value,wall_time\nx,1,train/loss,0.1,1\n"])
def test_a_garbled_run_log_is_set_aside_and_the_run_goes_on(use_plugins, toy_root, tmp_path, capsys, monkeypatch,
                                                           garbage):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    monkeypatch.setenv("STBENCH_TEST_INTERRUPT_AT_STEP", "4")  # in the second epoch: the first is checkpointed
    assert _run(out, toy_root, "--no-leaderboard") == 130
    monkeypatch.delenv("STBENCH_TEST_INTERRUPT_AT_STEP")
    log = next(out.rglob("log.csv"))
    log.write_bytes(garbage)
    capsys.readouterr()
    assert _run(out, toy_root, "--no-leaderboard") == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "cannot be read" in line]) == 1, err
    assert "resuming after epoch 1" in err
    assert log.read_text().startswith("step,epoch,name,value,wall_time") and "test/mse" in log.read_text()
    aside = list(log.parent.glob("log.csv.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage  # kept, never deleted
    assert _run(out, toy_root, "--no-leaderboard") == 0  # and never the same failure again


def test_a_stale_temporary_beside_a_finished_record_is_removed(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--no-leaderboard", models="persistence") == 0
    record = next(out.rglob("record.json"))
    stale = [record.with_name(".record.json.tmp99999"), record.with_name(".sample.npz.tmp4242")]
    for path in stale:
        path.write_text("{half")  # what a kill -9 during the write leaves
    assert _run(out, toy_root, "--no-leaderboard", models="persistence") == 0
    assert "already done" in capsys.readouterr().err
    assert not any(path.exists() for path in stale)
    json.loads(record.read_text())


@pytest.mark.slow
def test_a_staging_folder_left_by_a_killed_prepare_is_removed(tmp_path, capsys):
    pytest.importorskip("stbench_data_kth")
    from stbench_data_kth import ACTIONS, FAST_ACTIONS

    root = tmp_path / "data"
    script = ("import sys, time\nfrom pathlib import Path\nfrom stbench_data_common.staging import staged_folder\n"
              "with staged_folder(Path(sys.argv[1]) / 'kth') as staging:\n"
              "    (staging / 'walking').mkdir()\n    (staging / 'walking' / 'half.avi').write_bytes(b'x' * 1000)\n"
              "    print('staged', flush=True)\n    time.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "staged"
        live = list(root.glob(".kth.preparing-*"))
        assert len(live) == 1
        from stbench_data_common.staging import remove_stale_staging

        assert remove_stale_staging(root / "kth") == [] and live[0].exists()  # its owner still runs: kept
    finally:
        child.kill()  # kill -9: no cleanup runs
        child.wait()
    assert live[0].exists()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for action in ACTIONS + FAST_ACTIONS:
        (downloads / f"person01_{action}_d1_uncomp.avi").write_bytes(b"avi")
    assert main(["data", "prepare", "kth-10-20", "--from", str(downloads), "--data-root", str(root)]) == 0
    assert f"removed {live[0]}" in capsys.readouterr().err
    assert not live[0].exists() and sorted(p.name for p in root.iterdir()) == ["kth"]


@pytest.mark.parametrize("index,problem", [({"runs": 5}, "'runs' is int, not a list"),
                                           ({"runs": [1, 2]}, "run 0 is int, not an object"),
                                           ({"runs": [{"index": 0, "argv": "stbench run"}]}, "no command line"),
                                           ([1, 2, 3], "not readable as a JSON object")])
def test_a_damaged_launch_index_is_one_line_in_status(use_plugins, toy_root, tmp_path, capsys, index, problem):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _run(out, toy_root, "--no-leaderboard", models="persistence") == 0
    good = out / "launch" / "20260101-000000"
    _write(good / "index.json", json.dumps({"launcher": "local", "launcher_pid": 1 << 30, "runs": [
        {"index": 0, "argv": ["run", "--models", "persistence"], "label": "persistence"}]}))
    _write(good / "states" / "0.json", "[1, 2]")  # a state file that is not an object
    _write(out / "launch" / "20260102-000000" / "index.json", json.dumps(index))
    capsys.readouterr()
    assert main(["status", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    damaged = [line for line in captured.err.splitlines() if "damaged" in line]
    assert len(damaged) == 1 and problem in damaged[0] and "20260102-000000" in damaged[0], captured.err
    assert "Traceback" not in captured.err and "persistence" in captured.out


# ---------------------------------------------------------------- every option checked where it is given

@pytest.mark.parametrize("option,message", [
    ("ssim_datarange=2", "--metric-option ssim_datarange: no metric reads it (did you mean ssim_data_range?)"),
    ("junk", "--metric-option expects KEY=VALUE, got 'junk'"),
    ("ssim_data_range=-1", "--metric-option: ssim_data_range must be a number > 0, got -1"),
    ("ssim_data_range=wide", "--metric-option: ssim_data_range must be a number > 0, got 'wide'"),
])
def test_metric_options_are_checked_where_they_are_given(use_plugins, toy_root, tmp_path, capsys, option, message):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "out", toy_root, "--metric-option", option) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # found before anything runs
    pred = tmp_path / "pred.npy"
    np.save(pred, np.zeros((2, 6, 1, 16, 16), np.float32))
    assert main(["score", "--pred", str(pred), "--true", str(pred), "--task", "toy-6-6",
                 "--metric-option", option]) == 2
    assert message in capsys.readouterr().err


def test_a_good_metric_option_reaches_its_metric_and_one_for_a_metric_not_computed_is_named(use_plugins, toy_root,
                                                                                          tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    assert _run(tmp_path / "out", toy_root, "--metric-option", "ssim_data_range=2", models="persistence",
                *["--no-leaderboard"]) == 0
    assert next(iter(_records(tmp_path / "out").values()))["metric_options"] == {"ssim_data_range": 2}
    assert _run(tmp_path / "out", toy_root, "--metrics", "mse", "--metric-option", "ssim_data_range=2") == 2
    assert "--metric-option ssim_data_range: read by ssim, not among the metrics of these runs (mse)" in \
        capsys.readouterr().err


def test_every_installed_metric_declares_the_options_it_reads(use_plugins):
    use_plugins()
    from stbench import plugins

    undeclared = [name for name, spec in plugins.metrics().items() if spec.options is None]
    assert not undeclared, undeclared


@pytest.mark.parametrize("extra,message", [
    (["--batch-size", "0"], "--batch-size must be at least 1 (clips per forward pass), got 0"),
    (["--batch-size", "-1"], "--batch-size must be at least 1 (clips per forward pass), got -1"),
    (["--device", "cuda"], "--device cuda: CUDA is not available on this machine; use --device cpu"),
])
def test_predict_checks_its_options_first(use_plugins, tmp_path, capsys, monkeypatch, extra, message):
    use_plugins("plugin_fixture", only="testplug,baselines")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["predict", "--model", "tiny", "--task", "toy-6-6", "--checkpoint", str(tmp_path / "none.pt"),
                 "--input", str(tmp_path / "none.npy"), "--out", str(tmp_path / "p.npy"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"stbench: error: {message}", err


@pytest.mark.parametrize("model,setting,message", [
    ("simvp", "hid_s=0", "hid_s must be a whole number >= 1, got 0"),
    ("simvp", "n_t=-2", "n_t must be a whole number >= 1, got -2"),
    ("convlstm", "patch_size=0", "patch_size must be a whole number >= 1, got 0"),
    ("convlstm", "patch_size=3", "patch_size must divide the frame's height and width (64 x 64), got 3; choose one "
                                 "of 1, 2, 4, 8, 16, 32, 64"),
])
def test_widths_and_patch_sizes_are_checked_when_the_plan_is_made(use_plugins, capsys, model, setting, message):
    use_plugins()
    pytest.importorskip(f"stbench_{model}")
    assert main(["profile", "--models", model, "--tasks", "mmnist-10-10", "--profile", "smoke", "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_size_ranges_follow_the_declarations():
    from stbench import ModelSpec
    from stbench.config import hparam_schema

    spec = ModelSpec(name="m", family="baseline", build=None, hparams={"smoke": {"default": {
        "hid_s": 16, "num_layers": 2, "n_head_channels": -1, "num_frames": 0, "layer_norm": 0, "patch_size": None,
        "ratio": 2}}})
    schema = hparam_schema(spec)
    assert schema["hid_s"].minimum == 1 and schema["num_layers"].minimum == 1
    assert schema["n_head_channels"].minimum is None  # -1 is declared: a meaning, not a mistake
    assert schema["num_frames"].minimum is None and schema["layer_norm"].minimum is None
    assert schema["ratio"].minimum is None
