"""stbench model plugin: MMVP, motion-matrix-based video prediction (Zhong et al., ICCV 2023).

Model ``mmvp``: an RRDB encoder / decoder whose future features (and pixels) are composed from the
observed ones through motion matrices (cosine similarities between consecutive frames' features),
which a small network predicts forward; an RRDB enhancer fuses the decoded and composed frames.
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["ARCH_KEYS", "OPENSTL_KEYS", "OPENSTL_UNUSED", "MMVPModel", "build_mmvp"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("MMVPModel", "build_mmvp")})

ARCH_KEYS = ("hid_s", "hid_t", "rrdb_encoder_num", "rrdb_decoder_num", "rrdb_enhance_num", "downsample")

# OpenSTL's names (openstl/models/mmvp_model.py, openstl/modules/mmvp_modules.py) for the same parameters.
_RRDB = r"\.(\d+)\.RDB(\d)\."
_PREDICTOR = (("conv_pre_1", "pre1"), ("bn_pre_1", "pre1_norm"), ("conv_pre_2", "pre2"), ("bn_pre_2", "pre2_norm"),
              ("conv1_1", "down1"), ("bn1_1", "down1_norm"), ("conv3d_1.conv3d", "temporal1.conv"),
              ("conv3d_1.bn3d", "temporal1.norm"), ("conv_translate.0", "translate"),
              ("bn_translate", "translate_norm"), ("conv2_1", "down2"), ("bn2_1", "down2_norm"),
              ("temporal_layer.conv3d", "temporal2.conv"), ("temporal_layer.bn3d", "temporal2.norm"),
              ("temporal_layer.0", "temporal2"), ("conv3_1", "merge"), ("bn3_1", "merge_norm"),
              ("conv4_1", "out"), ("bn4_1", "out_norm"))
OPENSTL_KEYS = (
    (r"enc\.inconv\.", "stem."),
    (r"enc\.block_rrdb" + _RRDB, r"encoder_rrdb.\1.rdb\2."),
    (r"enc\.pre_downsample_block\.", "pre_down."),
    (r"enc\.downsample_high\.", "down_high."),
    (r"enc\.downsample_low\.", "down_low."),
    (r"filter\.filter_block\.", "filters."),
    (r"hid\.predictor\.conv1\.", "motion.embed."),
    (r"hid\.predictor\.out_conv\.", "motion.readout."),
    *[(r"hid\.predictor\.predictor\." + theirs.replace(".", r"\.") + r"\.", f"motion.net.{ours}.")
      for theirs, ours in _PREDICTOR],
    (r"dec\.upsample_block_low2high\.conv\.conv\.0\.", "up_low.conv."),
    (r"dec\.upsample_block_low2high\.", "up_low."),
    (r"dec\.upsample_block\.(\d+)\.conv\.conv\.0\.", r"ups.\1.conv."),
    (r"dec\.upsample_block\.", "ups."),
    (r"dec\.rrdb_block" + _RRDB, r"decoder_rrdb.\1.rdb\2."),
    (r"dec\.outc\.", "decoder_readout."),
    (r"enhance\.model" + _RRDB, r"enhancer.\1.rdb\2."),
    (r"enhance\.model\.0\.", "enhancer.0."),
    (r"enhance\.outconv\.", "enhancer_readout."),
)
# Created by OpenSTL's MMVP_Model and never called: MidMotionMatrix's `scale_fuser_1` / `scale_fuser_2`,
# and PredictModel's `fuse_conv` (used only with a residual matrix input, which MMVP never passes).
OPENSTL_UNUSED = ("hid.scale_fuser_1.*", "hid.scale_fuser_2.*", "hid.predictor.fuse_conv.*")


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="mmvp", family="recurrent-free", build=lazy("stbench_mmvp.model:build_mmvp"),
                       hparams=configs["mmvp"],
                       description="MMVP (Zhong et al., ICCV 2023): motion matrices between frame features, "
                                   "predicted forward and composed into future features and pixels",
                       checkpoint_ignore=OPENSTL_UNUSED, checkpoint_rename=OPENSTL_KEYS))
