"""The contract every registered model must keep, as checks any test suite can run (timm-style registry
tests): core's suite runs them over every installed model, so a new model plugin is covered with no test
written. Sizes are small (the ``smoke`` declarations on a 32x32 frame) so the whole sweep takes seconds."""
from typing import List, Optional, Sequence, Tuple

import torch

from .config import resolve
from .data import DatasetSpec
from .models import STModel, count_params
from .profiling import count_macs
from .tasks import Task
from .training import make_optimizers, staged_step

# A stand-in dataset for the checks: the models use what they declare for Moving MNIST (hparams_like).
CONTRACT_SHAPE = (1, 32, 32)
CONTRACT_TASKS: Tuple[Tuple[int, int], ...] = ((4, 4), (4, 8), (4, 2))  # equal, extended, reduced


def contract_dataset(shape=CONTRACT_SHAPE, like: str = "mmnist") -> DatasetSpec:
    return DatasetSpec(name="contract", shape=tuple(shape), open=None, max_length=64, layout="",
                       hparams_like=like)


def build_for_contract(model_spec, task: Task, dataset: Optional[DatasetSpec] = None, seed: int = 0) -> STModel:
    """The model at its ``smoke`` size for ``task``, hyper-parameters resolved as a run resolves them."""
    dataset = dataset or contract_dataset(task.shape)
    _, hparams, _ = resolve(model_spec, dataset, "smoke", {})
    torch.manual_seed(seed)
    return model_spec.build(task, hparams)


def check_shapes(model: STModel, task: Task, batch: int = 2) -> None:
    """forward(x, t_out) returns exactly [B, t_out, C, H, W], finite; the same weights serve a longer horizon."""
    model.eval()
    x = torch.rand(batch, task.t_in, *task.shape)
    for t_out in (task.t_out, task.t_out + 3):
        with torch.no_grad():
            out = model(x, t_out)
        expected = (batch, t_out, *task.shape)
        assert tuple(out.shape) == expected, f"forward(x, {t_out}) returned {tuple(out.shape)}, expected {expected}"
        assert torch.isfinite(out).all(), f"forward(x, {t_out}) returned non-finite values"


def check_training(model: STModel, task: Task, train_cfg, batch: int = 2, steps: int = 3) -> None:
    """A finite scalar loss; every trainable parameter receives a gradient; a few optimiser steps on one
    fixed batch lower the loss (models without trainable parameters are exempt from the last two). A model
    with ``update_stages`` takes its steps as the trainer does, stage by stage; its ``loss`` (the sum of its
    stage losses) is what must go down."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(batch, task.t_in, *task.shape, generator=generator)
    y = torch.rand(batch, task.t_out, *task.shape, generator=generator)
    model.train()
    late = 10 ** 6  # a step after every scheduled-sampling schedule: the loss is deterministic there
    loss = model.loss(x, y, late)
    assert loss.ndim == 0 and torch.isfinite(loss), f"loss must be a finite scalar, got {loss}"
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        return
    loss.backward()
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"parameters without a gradient from the loss: {missing[:5]}"
    optimizers = make_optimizers(model, dict(train_cfg, lr=1e-4))
    torch.manual_seed(0)
    before = model.loss(x, y, late).item()
    for _ in range(steps):
        if model.update_stages:  # the trainer's path: each stage's loss updates its own parameters in turn
            staged_step(model, optimizers, x, y, late)
            continue
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        model.loss(x, y, late).backward()
        for optimizer in optimizers:
            optimizer.step()
    torch.manual_seed(0)
    after = model.loss(x, y, late).item()
    assert after < before, f"{steps} optimiser steps on one batch did not lower the loss ({before:.6g} -> {after:.6g})"


def check_macs(model: STModel, task: Task, family: str) -> int:
    """MAC counting works: > 0 for every model with parameters, 0 for a parameter-free baseline."""
    macs = count_macs(model, task)
    if count_params(model) == 0:
        assert macs == 0, f"a model without parameters counted {macs} MACs"
    else:
        assert macs > 0, "counted no multiply-accumulates"
    return macs


def check_model(model_spec, tasks: Sequence[Tuple[int, int]] = CONTRACT_TASKS, shape=CONTRACT_SHAPE) -> List[str]:
    """Every contract check for one registered model over the equal, extended and reduced tasks."""
    dataset = contract_dataset(shape)
    train_cfg, _, _ = resolve(model_spec, dataset, "smoke", {})
    checked = []
    for t_in, t_out in tasks:
        task = Task(dataset.name, t_in, t_out, tuple(shape))
        model = build_for_contract(model_spec, task, dataset)
        check_shapes(model, task)
        if (t_in, t_out) == tuple(tasks[0]):
            check_macs(model, task, model_spec.family)
            check_training(model, task, train_cfg)
        checked.append(task.name)
    return checked
