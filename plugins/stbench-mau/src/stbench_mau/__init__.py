"""stbench model plugin: MAU, the motion-aware unit (Chang et al., NeurIPS 2021), on the rollout of ``stbench_convlstm``."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["MAU", "MotionAwareUnit", "OPENSTL_KEYS", "OPENSTL_UNUSED", "build_mau"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("MAU", "MotionAwareUnit", "build_mau")})

# OpenSTL's (and the original code's) names: `encoders.N.encoder_t_conv-1` / `encoders.N.encoder_tK` and
# `decoders.N.c_decoderN` are the convolutions inside Sequentials, `cell_list` holds the units, `srcnn.0`
# is the read-out.
OPENSTL_KEYS = (
    (r"encoders\.(\d+)\.encoder_t[\w-]*\.", r"encoders.\1.0."),
    (r"decoders\.(\d+)\.c_decoder\d+\.", r"decoders.\1.0."),
    (r"cell_list\.", "cells."),
    (r"srcnn\.0\.", "conv_last."),
)
# Both create a 1x1 `merge` (2h -> h) and a 1x1 `conv_last_sr` (2C -> C) that their forward never calls
# (8,259 parameters at 64 hidden channels and one frame channel).
OPENSTL_UNUSED = ("merge.*", "conv_last_sr.*")


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="mau", family="recurrent", build=lazy("stbench_mau.model:build_mau"),
                       hparams=configs["mau"],
                       description="MAU (Chang et al. 2021): motion-aware units attending over the last tau "
                                   "states, between strided-convolution encoder and decoder",
                       checkpoint_ignore=OPENSTL_UNUSED, checkpoint_rename=OPENSTL_KEYS))
