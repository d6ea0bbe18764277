"""What a CUDA run does differently, checked on CPU: each torchrun process takes its own GPU and nccl,
pinned memory and persistent workers keep every batch as it was, 16-mixed trains with a loss scale that a
resume restores, and records name the GPU. (The nccl run itself needs a GPU: benchmarks/gpu_check.sh.)"""
import pytest
import torch

from stbench import Clips, STModel, UserError, distributed
from stbench.distributed import SINGLE, Processes, device_for, join_from_environment
from stbench.running import Machine
from stbench.training import Loading, SingleTaskBatches, default_workers, train


class EpochClips(Clips):
    """Clips whose values depend on the epoch they were moved to, as Moving MNIST's on-the-fly clips do."""

    def __init__(self, n=10):
        self.n, self.current = n, 0

    def set_epoch(self, epoch):
        self.current = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        value = torch.full((2, 1, 2, 2), float(index + 100 * self.current))
        return value, value + 0.5


def _all_batches(batches, epochs):
    return [[x.clone() for x, _, _ in batches.epoch(epoch)] for epoch in range(epochs)]


@pytest.mark.parametrize("world, rank", [(1, 0), (2, 1)])
def test_persistent_workers_see_the_same_batches_as_fresh_ones(world, rank):
    plain = SingleTaskBatches(EpochClips(), 4, seed=3, loading=Loading(world=world, rank=rank))
    persistent = SingleTaskBatches(EpochClips(), 4, seed=3,
                                   loading=Loading(workers=2, persistent=True, world=world, rank=rank))
    expected, got = _all_batches(plain, 3), _all_batches(persistent, 3)
    assert persistent._loader is not None and persistent._loader.persistent_workers
    assert len(got) == 3 and all(len(e) == len(g) == 2 for e, g in zip(expected, got))
    for epoch_expected, epoch_got in zip(expected, got):
        for a, b in zip(epoch_expected, epoch_got):
            assert torch.equal(a, b)
    assert float(got[2][0].max()) >= 200  # the workers moved to epoch 2 although they started in epoch 0


def test_cuda_machines_pin_memory_and_keep_workers(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    cuda = Machine(device="cuda:0").loading()
    assert (cuda.workers, cuda.pin_memory, cuda.persistent) == (8, True, True)
    assert Machine(device="cuda:0", processes=Processes(0, 4, 0, "nccl")).loading().workers == 3  # 16 cores / 4 - 1
    assert default_workers("cpu") == 0
    cpu = Machine(device="cpu").loading()
    assert (cpu.workers, cpu.pin_memory, cpu.persistent) == (0, False, False)
    described = Machine(device="cuda:0").describe(16, cuda)["loading"]
    assert described == {"workers": 8, "pin_memory": True, "persistent_workers": True}
    assert Machine(device="cuda", workers=0).loading().pin_memory is False  # nothing to pin without workers


class _FakeCuda:
    def __init__(self, monkeypatch, count):
        self.devices = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "set_device", self.devices.append)
        self.backends = []
        monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: self.backends.append(backend))


@pytest.fixture
def torchrun_env(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    yield
    distributed._state["processes"] = SINGLE


def test_torchrun_on_gpus_joins_with_nccl_and_takes_the_local_rank_gpu(monkeypatch, torchrun_env):
    fake = _FakeCuda(monkeypatch, count=2)
    processes = join_from_environment(None)  # CUDA present: nccl by default
    assert (processes.rank, processes.world, processes.local_rank, processes.backend) == (1, 2, 1, "nccl")
    assert fake.backends == ["nccl"] and fake.devices == [1]
    assert device_for(processes, "cuda") == "cuda:1"
    assert device_for(processes, "cuda:0") == "cuda:1"  # one GPU per process, whatever one device was named
    assert device_for(processes, "cpu") == "cpu"
    assert device_for(SINGLE, "cuda:1") == "cuda:1"  # a single process keeps the one asked for


def test_torchrun_on_cpu_joins_with_gloo_even_with_gpus_present(monkeypatch, torchrun_env):
    fake = _FakeCuda(monkeypatch, count=2)
    assert join_from_environment("cpu").backend == "gloo"
    assert fake.backends == ["gloo"] and fake.devices == []


def test_more_processes_than_gpus_is_one_clear_error(monkeypatch, torchrun_env):
    fake = _FakeCuda(monkeypatch, count=1)
    with pytest.raises(UserError, match="local rank 1 but this node has 1 CUDA device"):
        join_from_environment("cuda")
    assert fake.backends == []


def test_devices_this_machine_lacks_are_refused(monkeypatch):
    from stbench.running import pick_device

    _FakeCuda(monkeypatch, count=2)
    assert pick_device(None) == "cuda" and pick_device("cuda:1") == "cuda:1"
    with pytest.raises(UserError, match=r"has 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        pick_device("cuda:2")
    _FakeCuda(monkeypatch, count=0)
    with pytest.raises(UserError, match="CUDA is not available"):
        pick_device("cuda")


def test_records_name_the_gpu_and_count(monkeypatch):
    from stbench.records import hardware as hardware_info

    _FakeCuda(monkeypatch, count=2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"NVIDIA H200 ({device})")
    info = hardware_info("cuda:1")
    assert info["gpu"] == "NVIDIA H200 (cuda:1)" and info["gpu_count"] == 2
    assert "gpu" not in hardware_info("cpu")


class _Tiny(STModel):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t_out):
        return self.net(x.flatten(0, 1)).unflatten(0, x.shape[:2])[:, :t_out]

    def loss(self, x, y, step):
        return torch.nn.functional.mse_loss(self(x, y.shape[1]), y)


TRAIN = {"epochs": 2, "lr": 1e-2, "weight_decay": 0.0, "optimizer": "adam", "schedule": "none", "grad_clip": 1.0}


def test_16_mixed_trains_with_a_loss_scale_that_resumes(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    batches = SingleTaskBatches(EpochClips(8), 4, seed=0)
    first = train(_Tiny(), batches, dict(TRAIN, epochs=1), "cpu", checkpoint, "h", precision="16-mixed")
    state = torch.load(checkpoint, weights_only=True)
    assert state["scaler"]["scale"] > 0 and first.steps == 2 and all(map(torch.isfinite, map(torch.tensor, first.losses)))
    state["scaler"]["scale"] = 1024.0  # what the resumed run must start from
    torch.save(state, checkpoint)
    train(_Tiny(), batches, TRAIN, "cpu", checkpoint, "h", precision="16-mixed")
    resumed = torch.load(checkpoint, weights_only=True)
    # resumed from 1024 (it grows only every 2000 steps); a fresh scaler would still be near 65536
    assert resumed["epoch"] == 2 and 0 < resumed["scaler"]["scale"] <= 1024.0
    plain = train(_Tiny(), batches, dict(TRAIN, epochs=1), "cpu", tmp_path / "plain.pt", "h")
    assert torch.load(tmp_path / "plain.pt", weights_only=True)["scaler"] is None and plain.steps == 2
