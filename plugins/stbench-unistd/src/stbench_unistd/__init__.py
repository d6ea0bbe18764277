"""stbench model plugin: UniSTD (Ma et al., CVPR 2025), one adapted ViT shared by many tasks.

``build(task, hparams)`` builds a single-task model; ``build_joint([task, ...], {task.name: hparams})``
builds one joint model whose ``forward`` / ``loss`` take ``task=<name>`` (see README.md).
"""
from pathlib import Path

from stbench import ModelSpec, Task, UserError, hookimpl, load_yaml

from .backbone import Backbone
from .codec import TaskCodec
from .model import SHARED_DEFAULTS, TASK_DEFAULTS, UniSTD, split_hparams
from .pretrained import read_vit_checkpoint
from .ramoe import RankAdaptiveMoE

__all__ = ["Backbone", "RankAdaptiveMoE", "TaskCodec", "UniSTD", "build_unistd", "read_vit_checkpoint",
           "SHARED_DEFAULTS", "TASK_DEFAULTS"]


def build_single(task, hparams):
    """UniSTD for one task (the ModelSpec's ``build``)."""
    return build_unistd(task, hparams)


def build_unistd(tasks, hparams):
    """One task and its hparams, or a list of tasks and ``{task.name: hparams}`` (a joint model; the
    ModelSpec's ``build_joint``)."""
    if isinstance(tasks, Task):
        tasks, per_task = [tasks], {tasks.name: dict(hparams or {})}
    else:
        tasks = list(tasks)
        missing = [t.name for t in tasks if t.name not in (hparams or {})]
        if missing:
            raise UserError(f"unistd joint build: no hyper-parameters for {', '.join(missing)}; pass "
                            "{task.name: hparams} for every task")
        per_task = {t.name: dict(hparams[t.name] or {}) for t in tasks}
    if not tasks:
        raise UserError("unistd: build needs at least one task")
    if len({t.name for t in tasks}) != len(tasks):
        raise UserError(f"unistd joint build: a task is named twice in {', '.join(t.name for t in tasks)}")
    for task in tasks:
        if task.shape is None:
            raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
    split = {name: split_hparams(hp) for name, hp in per_task.items()}
    first = tasks[0].name
    shared = split[first][0]
    for name, (other, _) in split.items():
        differ = sorted(k for k in shared if other[k] != shared[k])
        if differ:
            key = differ[0]
            raise UserError(f"unistd joint model: the shared setting '{key}' is {shared[key]!r} for {first} but "
                            f"{other[key]!r} for {name}; shared settings ({', '.join(differ)}) must agree")
    return UniSTD(tasks, {name: own for name, (_, own) in split.items()}, shared)


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(
        name="unistd", family="recurrent-free", build=build_single, build_joint=build_unistd,
        hparams=load_yaml(Path(__file__).with_name("configs.yaml")),
        description="UniSTD: per-task conv codecs around a frozen ViT-B shared by all tasks, with rank-adaptive "
                    "mixtures of LoRA experts and lightweight temporal attention"))
