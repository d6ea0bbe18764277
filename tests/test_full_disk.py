"""A full disk anywhere, on a real small filesystem: a tmpfs the test mounts (as root, as CI runs; skipped with
the reason otherwise) is filled so that each write of a run in turn is the one the disk refuses (the run
record, checkpoints, predictions, the sample, the logs), then each write of the boards (request book,
pictures, markdown), ``stbench predict --out`` and ``stbench data prepare``.

Each fault must be one line that says the disk is full, where, how much was free and which file; the run is
marked failed in its record when the record still fits; no temporary file is left; nothing written before
the fault changes; and the same command with space again finishes with the uninterrupted metrics.

Which write comes when, and how much space the run has used by then, is measured once per scenario by a probe
run on the same tmpfs with room to spare (its ``open`` calls for writing are noted with the free space at that
moment); the fault runs themselves are plain runs on a disk that is really full."""
import builtins
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from stbench.cli import main

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TEMPORARY = re.compile(r"^\.(.+)\.tmp\d+$")


class SmallDisk:
    """A mounted tmpfs whose free space a filler file sets to the byte (tmpfs counts whole pages)."""

    def __init__(self, where: Path):
        self.where = where
        self.filler = where / "filler"

    def free(self) -> int:
        stats = os.statvfs(self.where)
        return stats.f_bfree * stats.f_frsize

    def leave(self, free: int) -> None:
        """Grow or shrink the filler so that ``free`` bytes (whole pages) stay free."""
        size = self.filler.stat().st_size if self.filler.exists() else 0
        target = size + self.free() - free
        assert target >= 0, (free, self.free())
        with open(self.filler, "ab") as handle:
            os.ftruncate(handle.fileno(), min(size, target))
            if target > 0:
                os.posix_fallocate(handle.fileno(), 0, target)
        assert abs(self.free() - free) < PAGE, (self.free(), free)

    def unfill(self) -> None:
        self.filler.unlink(missing_ok=True)

    def clear(self) -> None:
        for path in self.where.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.fixture
def small_disk(tmp_path):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the full-disk suite mounts a tmpfs, which needs root (CI runs the tests as root)")
    if shutil.which("mount") is None or not hasattr(os, "posix_fallocate"):
        pytest.skip("the full-disk suite needs mount(8) and posix_fallocate (Linux)")
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); the suite needs one")
    try:
        yield SmallDisk(where)
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _shown(path) -> str:
    """The name a fault line gives for a file: the file being written, not its temporary name."""
    name = Path(path).name
    match = TEMPORARY.match(name)
    name = match.group(1) if match else name
    return "events.out.tfevents" if name.startswith("events.out.tfevents") else name


def _pages(size: int) -> int:
    return -(-size // PAGE) * PAGE


def _probe(disk: SmallDisk, command, monkeypatch):
    """Run ``command()`` with room to spare and note each file opened for writing on the disk, in order: its
    path, the bytes the command had used on the disk just before, and the bytes the file took (whole pages)."""
    real_open, start, seen = builtins.open, disk.free(), []

    def size_of(path: Path) -> int:  # a temporary file, or the file it became by the next write
        match = TEMPORARY.match(path.name)
        for candidate in (path, path.with_name(match.group(1)) if match else path):
            if candidate.exists():
                return _pages(candidate.stat().st_size)
        return 0

    def settle():
        if seen and seen[-1][2] is None:
            path, used, _ = seen[-1]
            seen[-1] = (path, used, size_of(path))

    def noting(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, Path)) and any(c in str(mode) for c in "wax+"):
            path = Path(file)
            if disk.where in path.parents and not path.name.endswith(".lock"):
                settle()
                seen.append((path, start - disk.free(), None))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", noting)
    try:
        assert command() == 0
        settle()
    finally:
        monkeypatch.setattr(builtins, "open", real_open)
    return seen


def _one_fault_line(err: str, disk: SmallDisk, name: str):
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    match = re.search(rf"no space left on {re.escape(str(disk.where))} \((\d+\.\d) MB free(, [\d.]+ MB needed)?\) "
                      r"writing (\S+);", lines[0])
    assert match, lines[0]
    return match.group(3)


def _files(folder: Path):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "filler"}


def _valid(folder: Path):
    """Every file under ``folder`` is whole; no temporary file is left."""
    from PIL import Image

    for path in folder.rglob("*"):
        if not path.is_file() or path.name == "filler":
            continue
        assert not TEMPORARY.match(path.name) and ".preparing-" not in str(path), f"left behind: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                list(data.values())
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix in (".png", ".gif"):
            with Image.open(path) as image:
                image.load()
        elif path.suffix == ".md":
            assert path.read_text().startswith("# Leaderboard")
        elif path.name == "log.csv":
            assert path.read_text().startswith("step,epoch,name,value,wall_time")


def _records(out):
    return {json.loads(p.read_text())["model"]: json.loads(p.read_text())
            for p in sorted(Path(out, "runs").glob("*/*/record.json"))}


def _restore(disk: SmallDisk, snapshot: Path, out: Path):
    disk.unfill()
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(snapshot, out)


def _fault_at_each_write(disk, writes, snapshot, out, command, capsys, after=None):
    """For each noted write that can be the first the disk refuses: the disk full just then (room for all but its
    last page), one line naming it, what was there before unchanged. A write cannot be first when an earlier one
    needed as much room (page by page); those are left out. Returns the writes that failed, in order."""
    named, highest = [], 0
    for k, (path, used, took) in enumerate(writes):
        expected, peak = _shown(path), used + took
        free, earlier = peak - PAGE, highest
        highest = max(highest, peak)
        if free < earlier:  # an earlier write needed this much room: it would fail first
            continue
        for attempt in range(3):  # a file a few bytes longer than in the probe may move the fault by a page
            _restore(disk, snapshot, out)
            before = _files(out)
            disk.leave(free)
            capsys.readouterr()
            assert command() == 2, (k, expected)
            err = capsys.readouterr().err
            name = _shown(_one_fault_line(err, disk, expected))
            if name == expected:
                break
            order = [_shown(p) for p, _, _ in writes]
            later = name not in order[:k]
            free += -PAGE if later else PAGE
        assert name == expected, (k, expected, name, err)
        named.append(name)
        _valid(out)
        assert all(p.read_bytes() == data for p, data in before.items()), k  # nothing written before changed
        if after is not None:
            after(k, expected)
    return named


def _run(out, root, *extra):  # width 64: its best weights take more pages than the log before them
    return main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(out), "--save-predictions", "--select-on", "val", "--no-leaderboard", "--set",
                 "width=64", *extra])


def test_a_run_meets_a_full_disk_at_each_of_its_writes(use_plugins, small_disk, toy_maker, tmp_path, capsys,
                                                      monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    root = toy_maker("data", n_test=100)  # predictions larger than a checkpoint: each can be the write that fails
    assert _run(tmp_path / "reference", root) == 0
    expected = _records(tmp_path / "reference")["tiny"]["metrics"]
    out, snapshot = small_disk.where / "out", tmp_path / "snapshot"
    assert main(["run", "--models", "persistence", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root",
                 str(root), "--out", str(out), "--no-leaderboard"]) == 0  # written before: must never change
    shutil.copytree(out, snapshot)
    writes = _probe(small_disk, lambda: _run(out, root), monkeypatch)
    shown = {_shown(path) for path, _, _ in writes}
    assert {"events.out.tfevents", "log.csv", "best.pt", "checkpoint.pt", "predictions.npy", "targets.npy",
            "sample.npz", "record.json"} <= shown, shown
    marked = []

    def rerun_with_space(k, name):
        records = _records(out)
        if "tiny" in records:  # the failed record fitted: it says why
            assert records["tiny"]["status"] == "failed" and "no space left on" in records["tiny"]["error"], k
            marked.append(name)
        assert records["persistence"]["status"] == "ok"
        small_disk.unfill()
        assert _run(out, root) == 0, k  # space again: the same command finishes, as if never interrupted
        assert _records(out)["tiny"]["metrics"] == expected, k
        _valid(out)

    named = _fault_at_each_write(small_disk, writes, snapshot, out, lambda: _run(out, root), capsys,
                                 rerun_with_space)
    assert {"events.out.tfevents", "log.csv", "best.pt", "checkpoint.pt", "predictions.npy", "targets.npy",
            "sample.npz", "record.json"} <= set(named), named
    assert "predictions.npy" in marked and "checkpoint.pt" in marked, marked


def test_a_full_disk_never_stops_the_other_runs(use_plugins, small_disk, toy_maker, capsys, monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    root = toy_maker("data", n_test=200)
    out = small_disk.where / "out"

    def run(tasks):  # toy-4-8's predictions are four times toy-8-2's
        return main(["run", "--models", "tiny", "--tasks", tasks, "--profile", "smoke", "--data-root", str(root),
                     "--out", str(out), "--no-leaderboard", "--save-predictions"])

    start = small_disk.free()
    assert run("toy-8-2") == 0
    second = start - small_disk.free()  # what the second run needs
    small_disk.clear()
    writes = _probe(small_disk, lambda: run("toy-4-8"), monkeypatch)
    before, predictions = next((used, took) for path, used, took in writes if _shown(path) == "predictions.npy")
    small_disk.clear()
    slack = 4 * PAGE  # the first run's failed record
    assert second + slack < predictions  # the first run cannot reserve its predictions; the second fits after it
    small_disk.leave(before + second + slack)
    capsys.readouterr()
    assert run("toy-4-8,toy-8-2") == 2
    err = capsys.readouterr().err
    assert _one_fault_line(err, small_disk, "predictions.npy") == "predictions.npy"
    records = {r["task"]: r for r in (json.loads(p.read_text()) for p in out.glob("runs/*/*/record.json"))}
    assert records["toy-4-8"]["status"] == "failed" and "no space left on" in records["toy-4-8"]["error"]
    assert records["toy-8-2"]["status"] == "ok"  # the other run went on, on what the disk had left
    _valid(out)
    small_disk.unfill()
    assert run("toy-4-8,toy-8-2") == 0


def test_the_boards_meet_a_full_disk_at_each_of_their_writes(use_plugins, small_disk, toy_root, tmp_path, capsys,
                                                              monkeypatch):
    use_plugins("plugin_fixture", only="testplug,baselines")
    root = toy_root
    out, snapshot = small_disk.where / "out", tmp_path / "snapshot"
    for model in ("persistence", "tiny"):
        assert main(["run", "--models", model, "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                     "--out", str(out), "--no-leaderboard"]) == 0
    shutil.copytree(out, snapshot)
    board = lambda: main(["leaderboard", "--out", str(out)])  # noqa: E731 - the same refresh `stbench run` does
    writes = _probe(small_disk, board, monkeypatch)
    shown = {_shown(path) for path, _, _ in writes}
    assert {"book.json", "toy-6-6.md", "toy-6-6.smoke.per-frame.png", "toy-6-6.smoke.strip.png",
            "toy-6-6.smoke.sample.gif"} <= shown, shown
    records = {p: p.read_bytes() for p in out.rglob("record.json")}
    named = _fault_at_each_write(small_disk, writes, snapshot, out, board, capsys)
    assert {"book.json", "toy-6-6.smoke.per-frame.png", "toy-6-6.smoke.strip.png", "toy-6-6.smoke.sample.gif",
            "toy-6-6.md"} <= set(named), named
    assert all(p.read_bytes() == data for p, data in records.items())
    small_disk.unfill()
    assert board() == 0
    text = (out / "leaderboards" / "toy-6-6.md").read_text()
    assert "| tiny" in text and "| persistence" in text
    _valid(out)


def test_predict_out_on_a_full_disk(use_plugins, small_disk, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    root = toy_root
    reference = tmp_path / "reference"
    assert main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root", str(root),
                 "--out", str(reference), "--no-leaderboard"]) == 0
    checkpoint = next(reference.rglob("checkpoint.pt"))
    clips = np.random.default_rng(0).random((64, 6, 1, 16, 16), dtype=np.float32)
    np.save(tmp_path / "clips.npy", clips)
    expected = tmp_path / "expected.npy"

    def predict(out):
        return main(["predict", "--model", "tiny", "--task", "toy-6-6", "--profile", "smoke", "--checkpoint",
                     str(checkpoint), "--input", str(tmp_path / "clips.npy"), "--out", str(out), "--data-root",
                     str(root)])

    assert predict(expected) == 0
    needed = expected.stat().st_size
    out = small_disk.where / "predicted.npy"
    for free in (0, needed - PAGE):  # nothing free; all but one page free
        small_disk.leave(free)
        capsys.readouterr()
        assert predict(out) == 2
        err = capsys.readouterr().err
        assert _one_fault_line(err, small_disk, "predicted.npy") == "predicted.npy"
        assert f"{needed / 2 ** 20:.1f} MB needed" in err
        assert not any(small_disk.where.glob("*predicted*")), list(small_disk.where.iterdir())
    small_disk.unfill()
    assert predict(out) == 0
    assert out.read_bytes() == expected.read_bytes()


def test_data_prepare_on_a_full_disk(small_disk, tmp_path, capsys):
    pytest.importorskip("stbench_data_kth")
    from stbench_data_kth import ACTIONS, FAST_ACTIONS

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    rng = np.random.default_rng(0)
    for action in ACTIONS + FAST_ACTIONS:  # prepare copies the videos; it does not decode them
        (downloads / f"person01_{action}_d1_uncomp.avi").write_bytes(rng.bytes(40 * PAGE))
    root = small_disk.where / "data"

    def prepare():
        return main(["data", "prepare", "kth-10-20", "--from", str(downloads), "--data-root", str(root)])

    for free in (0, 100 * PAGE):  # at the first video; half-way through
        small_disk.clear()
        small_disk.leave(free)
        capsys.readouterr()
        assert prepare() == 2
        err = capsys.readouterr().err
        name = _one_fault_line(err, small_disk, "")
        assert name.startswith(str(root / "kth")) or name.endswith(".avi") or name == "kth", err
        assert "nothing was left behind" in err
        assert not root.exists() or not any(root.iterdir()), list(root.rglob("*"))
    small_disk.unfill()
    assert prepare() == 0
    assert len(list((root / "kth").rglob("*.avi"))) == len(ACTIONS + FAST_ACTIONS)
