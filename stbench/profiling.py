"""Params, FLOPs (as MACs, the published-table convention) and timing."""
import copy
import time

import torch
from torch.utils.flop_counter import FlopCounterMode



def sample_input(task, batch=1, device="cpu"):
    c, h, w = task.shape
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, task.t_in, c, h, w, generator=generator).to(device)


@torch.no_grad()
def _count(model, task, device) -> int:
    x = sample_input(task, 1, "cpu").to(device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, task.t_out)
    return int(counter.get_total_flops() // 2)


def count_macs(model, task, device="cpu") -> int:
    """Multiply-accumulates of one inference ``forward(x, t_out)`` at batch 1.

    Counts what inference really does (every recurrent step, every
    autoregressive chunk). ``FlopCounterMode`` counts 2 FLOPs per MAC; the
    published tables (fvcore) count MACs, so the total is halved. The count
    runs on a copy on the ``meta`` device (shapes only, no arithmetic), so
    paper-size models are counted in moments; a model whose forward needs
    real values is counted by running it on ``device``.
    """
    was_training = model.training
    try:
        meta = copy.deepcopy(model).to("meta").eval()
        return _count(meta, task, "meta")
    except Exception:  # data-dependent code (e.g. .item()) cannot run on meta tensors
        model.eval()
        try:
            return _count(model, task, device)
        finally:
            model.train(was_training)


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


class Stopwatch:
    """Wall-clock seconds of a block, synchronising CUDA so GPU work is counted."""

    def __init__(self, device="cpu"):
        self.device, self.seconds = device, 0.0

    def __enter__(self):
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._start
        return False
