"""Several processes for one run, launched by torchrun: the process group, which rank does what, and the
few collective steps stbench needs (gradient averaging is DistributedDataParallel's own).

``torchrun --nproc-per-node N -m stbench run ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
stbench then joins the process group (gloo on CPU, nccl on CUDA). ``batch_size`` stays the *global*
batch: each of the N processes takes ``batch_size / N`` clips of every global batch, in the same seeded
order a single process would, so a run means the same thing whatever the world size (OpenSTL's own docs
show SimVP+gSTA at MSE 26.7 on one GPU and 30.0 on 2 x 8: stbench does not change results silently).
"""
import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist

from .errors import UserError


@dataclass(frozen=True)
class Processes:
    """This process's place among the run's processes (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def main(self) -> bool:
        """The one process that writes checkpoints, records, predictions and boards."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def describe(self, global_batch: int) -> dict:
        return {"world_size": self.world, "backend": self.backend or "none", "global_batch": int(global_batch),
                "per_process_batch": int(global_batch) // self.world,
                "launcher": "torchrun" if self.active else "single process",
                **({"batchnorm": "global batch (moments all-reduced across processes)"} if self.active else {})}

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of a number over all processes (each process's training loss of an epoch)."""
        if not self.active:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def maximum(self, value: float) -> float:
        if not self.active:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value, on every process."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, tensor: torch.Tensor, count: int, capacity: int) -> List[torch.Tensor]:
        """Every process's first ``count`` rows of ``tensor`` (padded to ``capacity`` rows for the exchange);
        on a single process just ``[tensor]``."""
        if not self.active:
            return [tensor[:count]]
        padded = torch.zeros((capacity, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
        padded[:count] = tensor[:count]
        counts = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(self.world)]
        dist.all_gather(counts, torch.tensor([count], dtype=torch.long, device=tensor.device))
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return [part[:int(n.item())] for part, n in zip(parts, counts)]


SINGLE = Processes()
_state = {"processes": SINGLE}


def current() -> Processes:
    return _state["processes"]


def join_from_environment(device: Optional[str]) -> Processes:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (once per process); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE
    if _state["processes"].active:
        return _state["processes"]
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    backend = "nccl" if cuda else "gloo"
    if cuda:
        if torch.cuda.device_count() <= local_rank:
            raise UserError(f"torchrun started local rank {local_rank} but this node has "
                            f"{torch.cuda.device_count()} CUDA device(s); use --nproc-per-node <= that")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    _state["processes"] = Processes(rank, world, local_rank, backend)
    return _state["processes"]


def device_for(processes: Processes, device: str) -> str:
    """Each process of a CUDA run gets its own GPU: cuda:LOCAL_RANK (plain ``cuda`` or one named device)."""
    if processes.active and device.startswith("cuda"):
        return f"cuda:{processes.local_rank}"
    return device


def leave() -> None:
    if _state["processes"].active and dist.is_initialized():
        dist.destroy_process_group()
    _state["processes"] = SINGLE


class GlobalMoments:
    """A BatchNorm layer that, in training under several processes, normalises with the moments of the global
    batch: two all-reduces (sum, then the squared deviations from the global mean), differentiable, so the
    gradients are those of one process seeing the whole batch. PyTorch's SyncBatchNorm does this on CUDA but
    refuses CPU tensors; this serves gloo. Mixed into the layer's own class, so weights, buffers and state-dict
    names stay the layer's; in eval mode, or on one process, it is the layer itself."""

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        wide = x.double()  # the sums in float64: one process's float32 kernel is then what differs, not these
        count = torch.tensor([float(x.numel() // x.shape[1])], dtype=torch.float64, device=x.device)
        dist.all_reduce(count)
        total = float(count.item())
        mean = all_reduce(wide.sum(dims)) / total
        centred = wide - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * total / max(total - 1.0, 1.0)
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        out = (centred / torch.sqrt(var + self.eps).view(shape)).to(x.dtype)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


_GLOBAL_CLASSES = {}


def synchronise_batchnorm(model: torch.nn.Module, device: str) -> int:
    """Make every BatchNorm layer of ``model`` normalise over the global batch under DDP (in place: the same
    modules and parameters); returns how many layers. CUDA: PyTorch's SyncBatchNorm; CPU: :class:`GlobalMoments`."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
              and not isinstance(m, (torch.nn.SyncBatchNorm, GlobalMoments))]
    cuda = str(device).startswith("cuda")
    for layer in layers:
        if cuda:
            layer.__class__ = torch.nn.SyncBatchNorm  # the same parameters and buffers
            layer.process_group = None  # the default group: every process of the run
        else:
            cls = layer.__class__
            if cls not in _GLOBAL_CLASSES:
                _GLOBAL_CLASSES[cls] = type(f"Global{cls.__name__}", (GlobalMoments, cls), {})
            layer.__class__ = _GLOBAL_CLASSES[cls]
    return len(layers)


def wrap_for_training(loss_module: torch.nn.Module, processes: Processes, device: str) -> torch.nn.Module:
    """The loss module (``training.LossOf``) in DistributedDataParallel when several processes train (gradients
    averaged by DDP; a model that declares ``unused_parameters`` has DDP find them each step). Its BatchNorm
    layers normalise over the global batch, so a run learns the same at any world size."""
    if not processes.active:
        return loss_module
    from torch.nn.parallel import DistributedDataParallel

    synchronise_batchnorm(loss_module.model, device)
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(loss_module, device_ids=ids, find_unused_parameters=loss_module.model.unused_parameters)
