"""stbench model plugin: CrevNet (Yu et al., ICLR 2020), as OpenSTL v0.3.0 trains and tests it."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["CrevNet", "InvertibleAutoencoder", "ReversiblePredictor", "build_crevnet", "OPENSTL_KEYS"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("CrevNet", "InvertibleAutoencoder", "ReversiblePredictor",
                                                "build_crevnet", "space_to_depth", "depth_to_space")})

# OpenSTL's names: the autoencoder is `encoder.stack.N.bottleneck_block`, the predictor `frame_predictor` with
# cells `convlstm.N` (gates `in_gate`, `remember_gate`, `cell_gate`, their memory twins `*_gate1`, `w1`,
# `out_gate`) and attention maps `att.N`.
_GATES = (("in_gate", "input_gate"), ("remember_gate", "forget_gate"), ("cell_gate", "cell_candidate"),
          ("in_gate1", "memory_input_gate"), ("remember_gate1", "memory_forget_gate"),
          ("cell_gate1", "memory_candidate"), ("w1", "output_mix"), ("out_gate", "output_gate"))
OPENSTL_KEYS = tuple((rf"frame_predictor\.convlstm\.(\d+)\.{old}\.", rf"predictor.cells.\1.{new}.")
                     for old, new in _GATES) + (
    (r"frame_predictor\.att\.", "predictor.attention."),
    (r"encoder\.stack\.(\d+)\.bottleneck_block\.", r"autoencoder.blocks.\1.residual."),
)


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="crevnet", family="recurrent", build=lazy("stbench_crevnet.model:build_crevnet"),
                       hparams=configs["crevnet"], checkpoint_rename=OPENSTL_KEYS,
                       description="CrevNet (Yu et al. 2020): an invertible 3-D autoencoder around a reversible "
                                   "stack of spatio-temporal ConvLSTM cells"))
