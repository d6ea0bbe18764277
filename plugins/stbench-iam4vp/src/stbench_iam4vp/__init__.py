"""stbench model plugin: IAM4VP (Implicit Stacked Autoregressive Model for Video Prediction, Seo et al., CVPR 2023).

Model ``iam4vp``: a SimVP-style conv encoder/decoder around a stack of time-conditioned ConvNeXt
blocks; one model call per future frame, every earlier prediction encoded back into its slot.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["ARCH_KEYS", "IAM4VPModel", "REFERENCE_KEYS", "REFERENCE_UNUSED", "build_iam4vp"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("IAM4VPModel", "build_iam4vp")})

ARCH_KEYS = ("hid_s", "n_s", "n_t", "time_dim", "head_dim")

# The reference's names (seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction,
# model.py / modules.py) for the same parameters, as checkpoint_rename rules.
_BLOCK = r"hid\.st_block\.(\d+)\."
_CONV = r"\.(\d+)\.conv\.conv\.(?:0\.)?"  # ConvSC -> BasicConv2d -> Conv2d (or Sequential(Conv2d, PixelShuffle))
_NORM = r"\.(\d+)\.conv\.norm\."
REFERENCE_KEYS = (
    (r"time_mlp\.linear1\.", "time_mlp.expand."),
    (r"time_mlp\.linear2\.", "time_mlp.project."),
    (r"enc\.enc" + _CONV, r"encoder.layers.\1.conv."),
    (r"enc\.enc" + _NORM, r"encoder.layers.\1.norm."),
    (r"lp\.enc" + _CONV, r"frame_encoder.layers.\1.conv."),
    (r"lp\.enc" + _NORM, r"frame_encoder.layers.\1.norm."),
    (r"dec\.dec" + _CONV, r"decoder.layers.\1.conv."),
    (r"dec\.dec" + _NORM, r"decoder.layers.\1.norm."),
    (r"dec\.readout\.", "merge."),
    (r"mask_token", "mask_tokens"),
    (_BLOCK + r"mlp\.1\.", r"predictor.blocks.\1.time_proj."),
    (_BLOCK + r"dwconv\.conv0\.", r"predictor.blocks.\1.mixer.local."),
    (_BLOCK + r"dwconv\.conv_spatial\.", r"predictor.blocks.\1.mixer.dilated."),
    (_BLOCK + r"dwconv\.conv1\.", r"predictor.blocks.\1.mixer.pointwise."),
    (_BLOCK + r"dwconv\.", r"predictor.blocks.\1.mixer."),
    (_BLOCK + r"pwconv1\.", r"predictor.blocks.\1.fc1."),
    (_BLOCK + r"pwconv2\.", r"predictor.blocks.\1.fc2."),
    (_BLOCK + r"gamma", r"predictor.blocks.\1.scale"),
    (_BLOCK + r"res_conv\.", r"predictor.blocks.\1.shortcut."),
    (_BLOCK, r"predictor.blocks.\1."),
    (r"attn\.proj_1\.", "refine.proj_in."),
    (r"attn\.proj_2\.", "refine.proj_out."),
    (r"attn\.spatial_gating_unit\.conv0\.", "refine.attention.local."),
    (r"attn\.spatial_gating_unit\.conv_spatial\.", "refine.attention.dilated."),
    (r"attn\.spatial_gating_unit\.conv1\.", "refine.attention.pointwise."),
)
# The reference's Predictor builds N_T + 1 blocks and its forward runs the first N_T: the last one is
# never used. Its index is N_T, and the authors trained with N_T = 8 only (main.py's default), so
# their checkpoints carry `hid.st_block.8.*` unused; stbench's model has no such block.
REFERENCE_UNUSED = ("hid.st_block.8.*",)


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="iam4vp", family="recurrent-free", build=lazy("stbench_iam4vp.model:build_iam4vp"),
                       hparams=configs["iam4vp"],
                       description="IAM4VP: SimVP-style encoder/decoder, time-conditioned ConvNeXt predictor, one "
                                   "call per future frame with earlier predictions fed back (CVPR 2023)",
                       checkpoint_ignore=REFERENCE_UNUSED, checkpoint_rename=REFERENCE_KEYS))
