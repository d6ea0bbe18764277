"""One run on two processes (torchrun, gloo on CPU) means what it means on one: the same losses at the same
global batch, identical metrics, and a checkpoint that resumes at another world size."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _env(**extra):
    path = os.pathsep.join([str(HERE / "plugin_fixture"), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, STBENCH_PLUGINS="testplug,baselines", OMP_NUM_THREADS="1", **extra)


def _argv(out, root, processes, *extra):
    run = ["-m", "stbench", "run", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "smoke", "--data-root",
           str(root), "--out", str(out), "--device", "cpu", "--set", "epochs=3", "--set", "batch_size=4",
           "--metrics", "mse,mae,ssim", *extra]
    if processes == 1:
        return [sys.executable, *run]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *run]


def _record(out):
    (path,) = Path(out).glob("runs/toy-6-6/*/record.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    import importlib.util

    loader = importlib.util.spec_from_file_location("stbench_tests_conftest", HERE / "conftest.py")
    conftest = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(conftest)
    root = conftest.make_toy(tmp_path_factory.mktemp("ddp-data"))
    out = tmp_path_factory.mktemp("single")
    done = subprocess.run(_argv(out, root, 1), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return root, _record(out)


@pytest.mark.slow
def test_two_gloo_processes_train_and_evaluate_as_one(single, tmp_path):
    root, reference = single
    done = subprocess.run(_argv(tmp_path / "out", root, 2), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = _record(tmp_path / "out")
    assert record["distributed"] == {"world_size": 2, "backend": "gloo", "global_batch": 4, "per_process_batch": 2,
                                     "launcher": "torchrun",
                                     "batchnorm": "global batch (moments all-reduced across processes)"}
    assert reference["distributed"]["world_size"] == 1
    assert record["train_losses"] == pytest.approx(reference["train_losses"], abs=1e-4)
    for key, value in reference["metrics"].items():  # weights equal up to float rounding of the averaging
        assert record["metrics"][key] == pytest.approx(value, rel=1e-6), key
    assert record["test_sequences"] == reference["test_sequences"]  # no clip counted twice or dropped
    assert done.stdout.count("tiny toy-6-6 smoke seed 0") == 1  # rank 0 speaks for both


@pytest.mark.slow
def test_a_batchnorm_model_learns_the_same_on_two_processes_as_on_one(single, tmp_path):
    """Each process normalises over the moments of the global batch (all-reduced: PyTorch's SyncBatchNorm refuses
    CPU tensors), so a BatchNorm model trains as on one process; with per-process moments the losses differ by
    about 1e-3 relative here."""
    root, _ = single
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"bn{processes}"
        done = subprocess.run(_argv(out, root, processes, "--set", "batchnorm=true"), env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs[processes] = _record(out)
    one, two = runs[1], runs[2]
    assert one["hparams"]["batchnorm"] is True and two["distributed"]["world_size"] == 2
    assert two["train_losses"] == pytest.approx(one["train_losses"], rel=1e-6)
    for key, value in one["metrics"].items():
        assert two["metrics"][key] == pytest.approx(value, rel=1e-6), key


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 3])
def test_sharded_evaluation_of_the_same_weights_gives_identical_metrics(single, tmp_path, processes):
    root, reference = single
    argv = _argv(tmp_path / "out", root, processes)
    at = argv.index("run")
    argv[at:at + 1] = ["eval", "--checkpoint", str(Path(reference["checkpoint"]).parent), "--profile", "smoke"]
    argv.remove("--set"), argv.remove("epochs=3")
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = _record(tmp_path / "out")
    assert record["distributed"]["world_size"] == processes
    # 6 test clips over 3 processes, and over 2 with a batch of 4 that leaves one rank short: none lost
    assert record["test_sequences"] == reference["test_sequences"]
    for key, value in reference["metrics"].items():
        assert record["metrics"][key] == pytest.approx(value, rel=1e-12), key
    assert record["per_clip"]["mse"] == pytest.approx(reference["per_clip"]["mse"], rel=1e-12)  # in test order


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_on_one(single, tmp_path):
    root, reference = single
    out = tmp_path / "out"
    stopped = subprocess.run(_argv(out, root, 2), env=_env(STBENCH_TEST_INTERRUPT_AT_STEP="4"), capture_output=True,
                             text=True, timeout=300)
    assert stopped.returncode != 0 and list(out.glob("runs/toy-6-6/*/checkpoint.pt"))
    done = subprocess.run(_argv(out, root, 1), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming after epoch 1" in done.stderr
    record = _record(out)
    assert record["train_losses"] == pytest.approx(reference["train_losses"], abs=1e-4)
    for key, value in reference["metrics"].items():
        assert record["metrics"][key] == pytest.approx(value, rel=1e-6), key


def _two_ddp_steps(unused_parameters, tmp_path):
    """Two training steps of a model with a parameter that gets no gradient, under DDP (gloo, one process)."""
    import torch
    import torch.distributed as dist

    from stbench.distributed import Processes, wrap_for_training
    from stbench.models import STModel
    from stbench.training import LossOf

    class Partly(STModel):
        def __init__(self):
            super().__init__()
            self.used, self.spare = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
            self.unused_parameters = unused_parameters

        def forward(self, x, t_out):
            return self.used(x)

    tmp_path.mkdir(exist_ok=True)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        runner = wrap_for_training(LossOf(Partly()), Processes(0, 2, 0, "gloo"), "cpu")
        for step in range(2):
            runner(torch.rand(3, 2), torch.rand(3, 2), step).backward()
    finally:
        dist.destroy_process_group()


def test_a_model_that_declares_unused_parameters_trains_under_ddp(tmp_path):
    _two_ddp_steps(True, tmp_path)
    with pytest.raises(RuntimeError, match="reduction"):  # what DDP says when a model does not declare them
        _two_ddp_steps(False, tmp_path / "again")
