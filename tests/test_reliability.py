"""Reliability and security: nothing runs from files stbench reads, one failing run never stops the others,
nothing written is lost on a full disk, names stay inside --out, bad records are reported, shared --out."""
import errno
import json
import os
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
        assert "Traceback" not in err and "No space left" in err
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

def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_metrics(toy_root, tmp_path):
    import random
    import time

    argv, env = _cli(tmp_path / "clean", toy_root, "--set", "epochs=4")
    started = time.time()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    full = time.time() - started
    expected = next(iter(_records(tmp_path / "clean").values()))["metrics"]
    rng = random.Random(0)
    for trial in range(3):
        out = tmp_path / f"trial{trial}"
        argv, env = _cli(out, toy_root, "--set", "epochs=4")
        for _ in range(2):
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, full))
            proc.kill()  # SIGKILL: no handler runs
            proc.wait()
            _valid_or_partial(out)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert next(iter(_records(out).values()))["metrics"] == expected
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
