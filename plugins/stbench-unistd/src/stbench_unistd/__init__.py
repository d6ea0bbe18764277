"""stbench model plugin: UniSTD (Ma et al., CVPR 2025), one adapted ViT shared by many tasks.

``build(task, hparams)`` builds a single-task model; ``build_joint([task, ...], {task.name: hparams})``
builds one joint model whose ``forward`` / ``loss`` take ``task=<name>`` (see README.md). The model
code loads when first used, so registering (and ``stbench list``) imports no torch.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["Backbone", "RankAdaptiveMoE", "TaskCodec", "UniSTD", "build_unistd", "read_vit_checkpoint",
           "SHARED_DEFAULTS", "TASK_DEFAULTS"]

__getattr__ = lazy_exports(__name__, {
    "backbone": ("Backbone",), "codec": ("TaskCodec",), "ramoe": ("RankAdaptiveMoE",),
    "model": ("SHARED_DEFAULTS", "TASK_DEFAULTS", "UniSTD", "split_hparams"),
    "pretrained": ("read_vit_checkpoint",), "builders": ("build_single", "build_unistd"),
})


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(
        name="unistd", family="recurrent-free", build=lazy("stbench_unistd.builders:build_single"),
        build_joint=lazy("stbench_unistd.builders:build_unistd"),
        hparams=load_yaml(Path(__file__).with_name("configs.yaml")),
        description="UniSTD: per-task conv codecs around a frozen ViT-B shared by all tasks, with rank-adaptive "
                    "mixtures of LoRA experts and lightweight temporal attention"))
