"""Hostile inputs (part of the fault suite): YAML alias bombs, array files whose header lies about their size, and
boards refreshed by many processes while a run writes into the same --out."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stbench.cli import main

HERE = Path(__file__).parent


def _toy_records(out, root, count):
    """One real toy run, copied ``count`` times as the records of models m0..m{count-1}."""
    assert main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(out), "--no-leaderboard"]) == 0
    (source,) = Path(out, "runs", "toy-6-6").glob("tiny__*")
    record = json.loads((source / "record.json").read_text())
    shutil.rmtree(source)
    made = []
    for i in range(count):
        made.append(_write_record(out, record, f"m{i}"))
    return record


def _write_record(out, record, model):
    folder = Path(out, "runs", "toy-6-6", f"{model}__smoke__seed0__{record['config_hash']}")
    folder.mkdir(parents=True, exist_ok=True)
    copy = dict(record, model=model, run=folder.name, sample=None, checkpoint=None)
    tmp = folder / ".record.json.part"
    tmp.write_text(json.dumps(copy))
    os.replace(tmp, folder / "record.json")
    return folder


REFRESHER = """
import sys, time
from stbench.leaderboard import refresh_leaderboards
out, until = sys.argv[1], float(sys.argv[2])
while time.time() < until:
    refresh_leaderboards(out)
"""


@pytest.mark.slow
def test_many_refreshers_never_hold_a_run_up_and_lose_no_row(use_plugins, toy_root, tmp_path):
    """Twelve processes refresh the boards in a loop while a run finishes: the run's refresh waits at most for
    the board write in progress and one more (bound: two measured board writes plus polling), and the last
    board written holds every finished record."""
    from stbench.leaderboard import refresh_leaderboards, write_leaderboards

    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    record = _toy_records(out, toy_root, 6)
    started = time.perf_counter()
    write_leaderboards(out, ["toy-6-6"])
    one_write = time.perf_counter() - started
    env = dict(os.environ, OMP_NUM_THREADS="1")
    until = time.time() + 6 + 8 * one_write
    refreshers = [subprocess.Popen([sys.executable, "-c", REFRESHER, str(out), str(until)], env=env,
                                   stderr=subprocess.PIPE, text=True) for _ in range(12)]
    try:
        time.sleep(2 + 2 * one_write)  # every refresher is looping now
        loaded = []
        for _ in range(2):  # what one board write costs under this load (into a folder of its own)
            started = time.perf_counter()
            write_leaderboards(out, ["toy-6-6"], board_dir=tmp_path / "measure")
            loaded.append(time.perf_counter() - started)
        waits = []
        for i in range(3):  # three runs finish one after another: record first, then the refresh
            _write_record(out, record, f"late{i}")
            started = time.perf_counter()
            refresh_leaderboards(out, ["toy-6-6"])
            waits.append(time.perf_counter() - started)
            board = (out / "leaderboards" / "toy-6-6.md").read_text()
            assert f"| late{i}" in board  # served: the board written since holds the new record
    finally:
        errors = [p.communicate(timeout=120)[1] for p in refreshers]
    assert all(p.returncode == 0 for p in refreshers), errors
    # the write in progress and one more, as measured under the same load, with room for the load's swings;
    # before the request book a refresh waited on the lock behind every refresher (47 s here, one write 3.7 s)
    bound = 3 * max(loaded) + 2.0
    assert max(waits) < bound, (waits, loaded)
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    for model in [f"m{i}" for i in range(6)] + [f"late{i}" for i in range(3)]:
        assert f"| {model}" in board, model
    book = json.loads((out / "leaderboards" / ".requests" / "book.json").read_text())
    assert book["served"] == book["counter"] and book["tasks"] == []


# ---------------------------------------------------------------- YAML alias bombs

def _bomb(levels=9, width=9):
    """A "billion laughs" YAML: each level an anchored list of ``width`` aliases of the one before."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _stbench(argv, env=None, timeout=60):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stbench", *argv], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    return done, time.perf_counter() - started


def test_an_alias_bomb_config_is_one_short_line_within_a_second(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    assert len(bomb.read_bytes()) < 500
    started = time.perf_counter()
    assert main(["run", "--models", "persistence", "--tasks", "mmnist-10-10", "--config", str(bomb)]) == 2
    assert time.perf_counter() - started < 1.0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expand to more than" in err[0] and len(err[0]) < 300, err


@pytest.mark.slow
def test_a_custom_dataset_bomb_is_one_short_warning(tmp_path):
    root = tmp_path / "data"
    (root / "custom").mkdir(parents=True)
    text = _bomb().replace("a0:", "name: bomb\nfiles: {train: x.npy, test: x.npy}\na0:", 1)
    (root / "custom" / "bomb.yaml").write_text(text)
    done, seconds = _stbench(["list", "datasets", "--data-root", str(root)])
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "bomb.yaml" in line]
    assert len(warnings) == 1 and "expand to more than" in warnings[0] and len(done.stderr) < 1000, done.stderr
    assert seconds < 20  # the interpreter's start; the refusal itself is instant (next test)


def test_reading_the_bomb_costs_nothing_and_ordinary_aliases_still_work():
    from stbench import UserError
    from stbench.safeload import yaml_text

    started = time.perf_counter()
    with pytest.raises(UserError, match="expand to more than"):
        yaml_text(_bomb(), "bomb.yaml")
    with pytest.raises(UserError, match="refers to its own anchor"):
        yaml_text("a: &a [1, *a]\n", "loop.yaml")
    assert time.perf_counter() - started < 1.0
    assert yaml_text("base: &b {lr: 0.1}\nother: *b\n", "ok.yaml") == {"base": {"lr": 0.1}, "other": {"lr": 0.1}}


# ---------------------------------------------------------------- arrays whose header lies

def _lying_npy(path, shape=(20, 10000, 64, 64, 3), dtype="<f4"):
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    path.write_bytes(buffer.getvalue() + b"\x00" * 16)
    return path


def _lying_npz(path):
    import zipfile

    member = _lying_npy(path.with_suffix(".member"), shape=(100000, 10, 1, 64, 64))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(member, "pred.npy")
    return path


@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_an_array_whose_header_lies_is_one_line(tmp_path, capsys, kind):
    lie = _lying_npy(tmp_path / "lie.npy") if kind == "npy" else _lying_npz(tmp_path / "lie.npz")
    assert lie.stat().st_size < 1000
    assert main(["score", "--pred", str(lie), "--true", str(lie), "--task", "mmnist-10-10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "header declares" in err[0] and "GiB" in err[0], err
    assert main(["predict", "--model", "persistence", "--task", "mmnist-10-10", "--checkpoint", str(lie),
                 "--input", str(lie), "--out", str(tmp_path / "p.npy")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_readers_of_npy_files_check_the_header_too(tmp_path):
    from stbench import UserError
    from stbench_data_common.arrays import load_npy

    lie = _lying_npy(tmp_path / "lie.npy", shape=(10, 20, 1, 64, 64), dtype="|u1")
    with pytest.raises(UserError, match="header declares"):
        load_npy(lie)
    folder = tmp_path / "root" / "moving_mnist"
    folder.mkdir(parents=True)
    _lying_npy(folder / "mnist_test_seq.npy", shape=(20, 10000, 64, 64), dtype="|u1")
    from stbench_data_mmnist import published_test

    with pytest.raises(UserError, match="header declares"):
        published_test(tmp_path / "root")
