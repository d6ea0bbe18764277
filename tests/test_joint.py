import json
from pathlib import Path

from stbench.cli import main
from stbench.training import JointBatches
from stbench.training import SingleTaskBatches


def test_joint_run_trains_one_model_and_marks_every_row(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert main(["run", "--models", "tinyjoint", "--tasks", "toy-6-6,toy-4-8", "--joint", "--profile", "smoke",
                 "--data-root", str(toy_root), "--out", str(out)]) == 0
    records = {p.parent.parent.name: json.loads(p.read_text()) for p in Path(out, "runs").glob("*/*/record.json")}
    assert set(records) == {"toy-6-6", "toy-4-8"}
    first, second = records["toy-6-6"], records["toy-4-8"]
    assert first["joint"]["task_count"] == 2 and first["run"] == second["run"]
    assert first["params"] == second["params"] == (4 * 9 + 4) + 2 * (4 * 9 + 1)  # shared + two heads
    assert first["steps"] == second["steps"] == 2 * (3 + 3)  # both tasks' batches every epoch
    assert len(second["per_frame"]["mse"]) == 8
    assert "tinyjoint [joint x2]" in (out / "leaderboards" / "toy-4-8.md").read_text()


def test_joint_batches_interleave_tasks_and_cover_each_once(toy_root, use_plugins):
    use_plugins("plugin_fixture", only="testplug")
    from stbench import plugins

    spec = plugins.get_dataset("toy")
    a = SingleTaskBatches(spec.open(str(toy_root), "train", 6, 6), 4, seed=1, task="a")
    b = SingleTaskBatches(spec.open(str(toy_root), "train", 4, 8), 2, seed=1, task="b")
    joint = JointBatches([a, b], seed=1)
    names = [name for _, _, name in joint.epoch(0)]
    assert len(names) == len(joint) == 3 + 6 and names.count("a") == 3 and names.count("b") == 6
    assert names != sorted(names)  # interleaved, not one task after the other
    assert names == [name for _, _, name in joint.epoch(0)]  # the same order for the same epoch


def test_joint_needs_a_multitask_model_and_two_tasks(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    base = ["run", "--joint", "--profile", "smoke", "--data-root", str(toy_root), "--out", str(tmp_path)]
    assert main(base + ["--models", "tiny", "--tasks", "toy-6-6,toy-4-8"]) == 2
    assert "cannot be trained jointly" in capsys.readouterr().err
    assert main(base + ["--models", "tinyjoint", "--tasks", "toy-6-6"]) == 2
    assert "at least two" in capsys.readouterr().err
