"""Grids of runs: the local pool and a submitit job array give the sequential command's metrics."""
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stbench import UserError, launch
from stbench.cli import main

MODELS = ("persistence", "simvp")
TASKS = ("mmnist-10-10", "mmnist-5-5")
SEEDS = (0, 1)
METRICS = {"mse", "mae", "ssim", "ssim_openstl", "psnr"}
JOBS = 2
THREADS = launch.threads_per_worker(JOBS)  # what each worker of the pool gets on this machine


def write_moving_squares(root, clips=12, frames=20):
    """``moving_mnist/mnist_test_seq.npy`` in the published layout (frames, clips, 64, 64) uint8."""
    rng = np.random.default_rng(0)
    array = np.zeros((frames, clips, 64, 64), dtype=np.uint8)
    for clip in range(clips):
        (row, col), (d_row, d_col) = rng.integers(0, 52, 2), rng.choice([-3, -2, 2, 3], 2)
        for frame in range(frames):
            array[frame, clip, row:row + 12, col:col + 12] = 255
            if not 0 <= row + d_row <= 52:
                d_row = -d_row
            if not 0 <= col + d_col <= 52:
                d_col = -d_col
            row, col = row + d_row, col + d_col
    folder = Path(root, "moving_mnist")
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "mnist_test_seq.npy", array)
    return Path(root)


def grid(out, root):
    return [["run", "--models", model, "--tasks", task, "--seed", str(seed), "--profile", "smoke", "--out", str(out),
             "--data-root", str(root)] for seed in SEEDS for task in TASKS for model in MODELS]


def metrics_by_run(out):
    found = {}
    for path in Path(out, "runs").glob("*/*/record.json"):
        record = json.loads(path.read_text())
        found[(record["model"], record["task"], record["seed"])] = record["metrics"]
    return found


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_moving_squares(tmp_path_factory.mktemp("grid-data"))


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, data_root):
    """The sequential command (one per seed), at the torch threads of each worker of the grids.

    Equal thread counts sum in the same order, so the metrics must be equal to the last bit.
    """
    out = tmp_path_factory.mktemp("sequential")
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        for seed in SEEDS:
            assert main(["run", "--models", ",".join(MODELS), "--tasks", ",".join(TASKS), "--seed", str(seed),
                         "--profile", "smoke", "--out", str(out), "--data-root", str(data_root)]) == 0
    finally:
        torch.set_num_threads(threads)
    found = metrics_by_run(out)
    assert len(found) == len(MODELS) * len(TASKS) * len(SEEDS)
    return found


def assert_complete_and_valid(out):
    """Every record whole and ok, no temp file left, and each board shows every model of its task."""
    from stbench.leaderboard import render
    from stbench.records import read_records

    leftovers = [p for p in Path(out).rglob("*") if ".tmp" in p.name or p.name.endswith(".part")]
    assert leftovers == []
    records = read_records(out)
    assert len(records) == len(MODELS) * len(TASKS) * len(SEEDS)
    for record in records:
        assert record["status"] == "ok", record.get("error")
        assert set(record["metrics"]) == METRICS and all(isinstance(v, float) for v in record["metrics"].values())
        assert all(len(curve) == record["t_out"] for curve in record["per_frame"].values())
        assert Path(record["sample"]).exists()
        if record["model"] == "simvp":
            assert Path(record["checkpoint"]).exists() and record["epochs"] == 1
    for task in TASKS:
        board_dir = Path(out, "leaderboards")
        board = (board_dir / f"{task}.md").read_text()
        assert all(f"| {model}" in board for model in MODELS)
        assert board == render(task, [r for r in records if r["task"] == task], board_dir)  # the last word


@pytest.mark.slow
def test_local_pool_gives_the_sequential_metrics_and_a_failure_stops_nothing(data_root, sequential, tmp_path):
    out = tmp_path / "pool"
    bad = ["run", "--models", "no-such-model", "--tasks", "mmnist-10-10", "--out", str(out)]
    argvs = grid(out, data_root)
    outcomes = launch.run_grid([bad] + argvs + [list(argvs[0])], launcher="local", jobs=JOBS, out_dir=out,
                               progress=None)
    assert len(outcomes) == 1 + len(argvs)  # the repeated argv runs once
    assert outcomes[0].state == "failed" and outcomes[0].exit_code == 2
    assert "unknown model 'no-such-model'" in outcomes[0].detail
    assert [o.state for o in outcomes[1:]] == ["finished"] * len(argvs)
    assert metrics_by_run(out) == sequential
    assert_complete_and_valid(out)
    index = json.loads(next(Path(out, "launch").glob("*/index.json")).read_text())
    assert index["launcher"] == "local" and index["jobs"] == JOBS and index["threads_per_run"] == THREADS
    threads = {json.loads(p.read_text())["hardware"]["cpu_threads"] for p in Path(out, "runs").glob("*/*/record.json")}
    assert threads == {THREADS}  # each worker ran with its share of the cores
    logs = sorted(p.name for p in Path(out, "launch").glob("*/logs/*"))
    assert logs == sorted(f"{i}.log" for i in range(len(outcomes)))
    rows = launch.status(out)
    assert sorted(r["state"] for r in rows) == ["failed"] + ["finished"] * len(argvs)


@pytest.mark.slow
def test_submitit_job_array_gives_the_sequential_metrics(data_root, sequential, tmp_path, capsys):
    out = tmp_path / "array"
    argvs = grid(out, data_root)
    # submitit's local executor stands in for Slurm: the same array of real subprocesses, run here.
    outcomes = launch.run_grid(argvs, launcher="slurm", options=[f"cpus={THREADS}", "time=10"], cluster="local",
                               out_dir=out, progress=None)
    assert [o.state for o in outcomes] == ["finished"] * len(argvs)
    assert all(o.exit_code == 0 and o.job_id for o in outcomes)
    assert metrics_by_run(out) == sequential
    assert_complete_and_valid(out)
    index = json.loads(next(Path(out, "launch").glob("*/index.json")).read_text())
    assert index["launcher"] == "slurm" and index["cluster"] == "local"
    assert [r["job_id"] for r in index["runs"]] == [o.job_id for o in outcomes]
    assert index["parameters"]["cpus_per_task"] == THREADS and index["parameters"]["timeout_min"] == 10
    assert [r["state"] for r in launch.status(out)] == ["finished"] * len(argvs)
    assert launch.print_status(out) == 0
    printed = capsys.readouterr().out
    assert f"{len(argvs)} runs: {len(argvs)} finished" in printed


# ---------------------------------------------------------------- Slurm itself, with stand-in commands

FAKE_SBATCH = """#!/bin/sh
cp "$1" "$FAKE_SLURM/submitted.sh"
echo "Submitted batch job 4242"
"""
FAKE_SACCT = """#!/bin/sh
printf 'JobID|State|NodeList\\n4242_0|RUNNING|node1\\n4242_1|PENDING|None\\n4242_2|TIMEOUT|node2\\n'
printf '4242_[3-7]|PENDING|None\\n'
"""


def _fake_slurm(folder, monkeypatch):
    folder.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("srun", "#!/bin/sh\nexit 0\n"),
                       ("scancel", "#!/bin/sh\nexit 0\n")):
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(folder))


def test_slurm_array_asks_for_the_options_and_status_reads_the_job_states(tmp_path, monkeypatch, capsys):
    _fake_slurm(tmp_path / "bin", monkeypatch)
    out = tmp_path / "out"
    argvs = grid(out, tmp_path / "data")
    options = ["gpus=1", "cpus=4", "mem=32G", "partition=gpu", "time=90", "account=proj", "slurm_qos=high"]
    outcomes = launch.run_grid(argvs, launcher="slurm", options=options, out_dir=out, detach=True, progress=None)
    assert [o.state for o in outcomes] == ["queued"] * 8
    assert [o.job_id for o in outcomes] == [f"4242_{i}" for i in range(8)]
    script = (tmp_path / "bin" / "submitted.sh").read_text()
    for line in ("--array=0-7%8", "--partition=gpu", "--time=90", "--gpus-per-node=1", "--cpus-per-task=4",
                 "--mem=32GB", "--account=proj", "--qos=high"):
        assert f"#SBATCH {line}\n" in script
    folder = next(Path(out, "launch").glob("*"))
    assert folder.parent == out / "launch" and (folder / "submitit").is_dir()
    # Array task 1 has run: what the job's process leaves behind (here a run that fails at once).
    bad = ["run", "--models", "no-such-model", "--tasks", "mmnist-10-10", "--out", str(out)]
    for key in ("STBENCH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "STBENCH_LAUNCHER", "STBENCH_LAUNCH"):
        monkeypatch.setenv(key, "")  # run_in_job sets them for its process; undone after the test
    assert launch.run_in_job(bad, str(folder / "states" / "1.json"), threads=1) == 2  # a plain stbench process
    assert os.environ["STBENCH_THREADS"] == "1"  # what that process inherited
    assert os.environ["STBENCH_LAUNCHER"] == "slurm" and os.environ["STBENCH_LAUNCH"] == f"{folder}#1"
    state = json.loads((folder / "states" / "1.json").read_text())
    assert state["state"] == "failed" and state["exit_code"] == 2
    rows = launch.status(out)
    assert [(r["job_id"], r["state"]) for r in rows] == [
        ("4242_0", "running"), ("4242_1", "failed"), ("4242_2", "failed")] + [(f"4242_{i}", "queued")
                                                                               for i in range(3, 8)]
    assert "exit code 2" in rows[1]["detail"] and "TIMEOUT" in rows[2]["detail"]
    launch.print_status(out)
    assert "8 runs: 5 queued, 1 running, 2 failed" in capsys.readouterr().out


def test_slurm_without_sbatch_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm commands on it
    with pytest.raises(UserError, match="no 'sbatch' on PATH"):
        launch.run_grid(grid(tmp_path, tmp_path), launcher="slurm", out_dir=tmp_path, progress=None)


# ---------------------------------------------------------------- options, threads, status

def test_launcher_options_are_typed_and_unknown_keys_name_the_known_ones():
    parsed = launch.parse_launcher_options(["gpus=2", "cpus=8", "mem=500M", "partition=a100", "time=120",
                                            "account=lab", "slurm_array_parallelism=4", "slurm_exclusive=true"])
    assert parsed == {"gpus": 2, "cpus": 8, "mem": 500 / 1024, "partition": "a100", "time": 120, "account": "lab",
                      "slurm_array_parallelism": 4, "slurm_exclusive": True}
    params = launch.executor_parameters(parsed)
    assert params["gpus_per_node"] == 2 and params["cpus_per_task"] == 8 and params["timeout_min"] == 120
    assert params["slurm_partition"] == "a100" and params["slurm_account"] == "lab" and params["mem_gb"] == 500 / 1024
    assert launch.executor_parameters({})["timeout_min"] == launch.DEFAULT_TIME_MINUTES
    with pytest.raises(UserError) as error:
        launch.parse_launcher_options(["gpu=1"])
    message = str(error.value)
    assert "unknown launcher option 'gpu'" in message and all(k in message for k in ("gpus", "cpus", "mem", "time"))
    for bad in (["gpus=two"], ["time=0"], ["mem=lots"], ["cluster=pbs"], ["novalue"]):
        with pytest.raises(UserError):
            launch.parse_launcher_options(bad)


@pytest.mark.slow
def test_submitit_refusing_a_slurm_option_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="submitit refused the options"):
        launch.run_grid(grid(tmp_path, tmp_path), launcher="slurm", options=["slurm_no_such_thing=1"],
                        cluster="local", out_dir=tmp_path, progress=None)


def test_threads_share_the_cores():
    assert launch.threads_per_worker(1, cores=16) == 16
    assert launch.threads_per_worker(3, cores=16) == 5
    assert launch.threads_per_worker(4, cores=2) == 1
    assert launch.thread_environment(3) == {"STBENCH_THREADS": "3", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}


@pytest.mark.slow
def test_launch_mistakes_are_user_errors(tmp_path):
    argvs = grid(tmp_path, tmp_path)
    with pytest.raises(UserError, match="unknown launcher 'pbs'"):
        launch.run_grid(argvs, launcher="pbs", out_dir=tmp_path)
    with pytest.raises(UserError, match="--detach needs --launcher slurm"):
        launch.run_grid(argvs, launcher="local", detach=True, out_dir=tmp_path)
    with pytest.raises(UserError, match="--launcher-option applies to --launcher slurm"):
        launch.run_grid(argvs, launcher="local", options=["gpus=1"], out_dir=tmp_path)
    with pytest.raises(UserError, match="no run"):
        launch.run_grid([], out_dir=tmp_path)
    with pytest.raises(UserError, match="--jobs 0"):
        launch.run_grid(argvs, jobs=0, out_dir=tmp_path, progress=None)
    with pytest.raises(UserError, match="no runs under"):
        launch.print_status(tmp_path / "empty")


@pytest.mark.slow
def test_status_of_a_local_launch_whose_command_ended(tmp_path):
    """A pool killed mid-grid: its finished run stays finished, the rest are failed, not 'running' forever."""
    from stbench.records import write_json_atomic

    folder = tmp_path / "launch" / "20260101-000000"
    argvs = grid(tmp_path, tmp_path)[:3]
    dead = _dead_pid()
    write_json_atomic(folder / "index.json", {"launcher": "local", "launcher_pid": dead, "host": None,
                                              "runs": [{"index": i, "argv": a} for i, a in enumerate(argvs)]})
    write_json_atomic(folder / "states" / "0.json", {"state": "finished", "exit_code": 0})
    write_json_atomic(folder / "states" / "1.json", {"state": "running", "pid": dead})
    rows = launch.status(tmp_path)
    assert [r["state"] for r in rows] == ["finished", "failed", "failed"]
    assert "ended before this run finished" in rows[1]["detail"] and "started" in rows[2]["detail"]
    write_json_atomic(folder / "index.json", {"launcher": "local", "launcher_pid": os.getpid(), "host": None,
                                              "runs": [{"index": i, "argv": a} for i, a in enumerate(argvs)]})
    write_json_atomic(folder / "states" / "1.json", {"state": "running", "pid": os.getpid()})
    assert [r["state"] for r in launch.status(tmp_path)] == ["finished", "running", "queued"]


def _dead_pid():
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _fixture_plugins(monkeypatch):
    """The test plugin importable here and in every process a grid starts."""
    from stbench import plugins

    fixture = str(Path(__file__).parent / "plugin_fixture")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([fixture, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("STBENCH_PLUGINS", "testplug,baselines")
    monkeypatch.syspath_prepend(fixture)
    plugins.reset()


@pytest.mark.slow
def test_a_grid_run_is_the_planned_run(toy_root, tmp_path, monkeypatch, capsys):
    """Each run of a grid gets its frozen plan: model-specific --set and --config reach it (persistence
    declares no `width`; tiny does), and its records are the plain command's."""
    import dataclasses

    from stbench import plugins
    from stbench.cli import main
    from stbench.errors import UserError
    from stbench.planning import plan_from_json, plan_run

    _fixture_plugins(monkeypatch)
    try:
        config = tmp_path / "run.yaml"
        config.write_text("set: {width: 4}\nmetrics: [mse, mae]\n")
        command = ["run", "--config", str(config), "--models", "persistence,tiny", "--tasks", "toy-6-6", "--profile",
                   "smoke", "--data-root", str(toy_root)]
        assert main(command + ["--out", str(tmp_path / "plain")]) == 0
        assert main(command + ["--out", str(tmp_path / "grid"), "--launcher", "local", "--jobs", "1"]) == 0, \
            capsys.readouterr().err
        assert main(command + ["--out", str(tmp_path / "slurm"), "--launcher", "slurm", "--launcher-option",
                               "cluster=local", "--launcher-option", "time=10"]) == 0, capsys.readouterr().err
        records = {}
        for out in ("plain", "grid", "slurm"):
            found = [json.loads(p.read_text()) for p in (tmp_path / out).glob("runs/toy-6-6/*/record.json")]
            records[out] = {r["model"]: (r["run"], r["hparams"], r["metrics"]) for r in found}
        for out in ("grid", "slurm"):  # the same runs; metrics to float tolerance (the pool sets torch's threads)
            assert {m: r[:2] for m, r in records[out].items()} == {m: r[:2] for m, r in records["plain"].items()}
            for model, (_, _, metrics) in records[out].items():
                assert metrics == pytest.approx(records["plain"][model][2], rel=1e-6)
        assert records["grid"]["tiny"][1]["width"] == 4
        assert set(records["grid"]["tiny"][2]) == {"mse", "mae"}
        planned = sorted((tmp_path / "grid" / "launch" / "plans").glob("*.json"))
        assert [p.stem for p in planned] == sorted(r[0] for r in records["grid"].values())
        values = json.loads(planned[1].read_text())["plan"]
        assert plan_from_json(values).run_name == planned[1].stem
        values["parts"][0]["hparams"]["width"] = 5  # edited, or a plugin changed since: refused in one line
        with pytest.raises(UserError, match="resolves to identity"):
            plan_from_json(values)
        plan = plan_run("tiny", "toy-6-6", "smoke")
        with pytest.raises(dataclasses.FrozenInstanceError):
            plan.seed = 1
    finally:
        plugins.reset()


@pytest.mark.slow
def test_the_run_command_launches_a_grid_on_a_local_pool(toy_root, tmp_path, monkeypatch, capsys):
    from stbench import plugins
    from stbench.cli import main

    _fixture_plugins(monkeypatch)
    try:
        out = tmp_path / "out"
        code = main(["run", "--models", "persistence,tiny", "--tasks", "toy-6-6", "--seeds", "0,1", "--profile",
                     "smoke", "--data-root", str(toy_root), "--out", str(out), "--launcher", "local", "--jobs", "2"])
        assert code == 0, capsys.readouterr().err
        records = [json.loads(p.read_text()) for p in out.glob("runs/toy-6-6/*/record.json")]
        assert sorted((r["model"], r["seed"]) for r in records) == [("persistence", 0), ("persistence", 1),
                                                                     ("tiny", 0), ("tiny", 1)]
        assert all(r["hardware"]["cpu_threads"] == launch.threads_per_worker(2) for r in records)
        assert "tiny" in (out / "leaderboards" / "toy-6-6.md").read_text()
        assert main(["status", "--out", str(out)]) == 0
        assert capsys.readouterr().out.count("finished") >= 4
    finally:
        plugins.reset()


@pytest.mark.slow
def test_an_array_task_of_two_processes_is_one_distributed_run(toy_root, tmp_path, monkeypatch):
    """--launcher-option processes=2: submitit starts two processes per array task (its local executor
    here), they join one gloo process group, and rank 0 alone writes the record and the state file."""
    fixture = str(Path(__file__).parent / "plugin_fixture")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([fixture, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("STBENCH_PLUGINS", "testplug,baselines")
    out = tmp_path / "out"
    argv = ["run", "--models", "tiny", "--tasks", "toy-6-6", "--seed", "0", "--profile", "smoke", "--data-root",
            str(toy_root), "--out", str(out), "--device", "cpu", "--no-leaderboard"]
    outcomes = launch.run_grid([argv], launcher="slurm", options=["processes=2", "time=10"], cluster="local",
                               out_dir=out, progress=None, leaderboards=False)
    assert [o.state for o in outcomes] == ["finished"], outcomes
    (record,) = [json.loads(p.read_text()) for p in out.glob("runs/toy-6-6/*/record.json")]
    assert record["distributed"]["world_size"] == 2 and record["distributed"]["backend"] == "gloo"
    assert record["status"] == "ok"
