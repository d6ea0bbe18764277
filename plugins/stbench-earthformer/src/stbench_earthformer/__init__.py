"""stbench model plugin: Earthformer (Gao et al., NeurIPS 2022), a hierarchical encoder-decoder of cuboid
self / cross attention with global vectors, faithful to the authors' CuboidTransformerModel."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["EarthformerModel", "build_model", "check_hparams", "CHECKPOINT_RENAME"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("EarthformerModel", "build_model", "check_hparams")})

# The authors' Lightning modules hold the network as `torch_nn_module`; their released .pt files are that
# module's state dict with the prefix removed. Every other name is theirs already.
CHECKPOINT_RENAME = ((r"torch_nn_module\.", ""),)


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(
        name="earthformer", family="recurrent-free", build=lazy("stbench_earthformer.model:build_model"),
        hparams=load_yaml(Path(__file__).with_name("configs.yaml"))["earthformer"],
        description="Earthformer: hierarchical encoder-decoder of cuboid self/cross attention with global vectors",
        checkpoint_rename=CHECKPOINT_RENAME))
