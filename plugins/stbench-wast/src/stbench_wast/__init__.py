"""stbench model plugin: WaST, wavelet-driven spatio-temporal prediction (Nie et al., AAAI 2024).

Model ``wast``: a 3-D Haar wavelet down / up path around stages of time-frequency aware blocks
(large-kernel and small-kernel depthwise branches with axis gates, an inverted-bottleneck mixer) over
frames folded into channels; trained with MSE plus a high-frequency focal loss on the wavelet LL band.
"""
import re
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["ARCH_KEYS", "CUTMODES", "OPENSTL_KEYS", "OPENSTL_DERIVED", "WaSTModel", "build_wast",
           "high_frequency_focal_loss"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("WaSTModel", "build_wast"),
                                      "wavelet": ("high_frequency_focal_loss",)})

ARCH_KEYS = ("encoder_dim", "block_list", "mlp_ratio", "large_kernel", "bottleneck_kernel", "loss_weight", "drop_path", "cutmode", "cutoff")
CUTMODES = ("standard", "early", "late")  # openstl/core/drop_scheduler.py

# OpenSTL's names (openstl/modules/wast_modules.py, WaST_level1 and its blocks; the mixer is timm's
# InvertedResidual) for the same parameters. A key is renamed by one rule, so the block rules are
# written out per stage.
_STAGES = {"translator1": "encoder_blocks", "bottleneck_translator": "bottleneck_blocks", "translator2": "decoder_blocks"}
_BLOCK = (("lk1.", "tall."), ("lk2.", "wide."), ("sk.", "local."), ("layer_scale_1", "scale"),
          ("temporal_mixer.conv_pw.", "mixer.expand."), ("temporal_mixer.bn1.", "mixer.expand_norm."),
          ("temporal_mixer.conv_dw.", "mixer.depthwise."), ("temporal_mixer.bn2.", "mixer.depthwise_norm."),
          ("temporal_mixer.se.conv_reduce.", "mixer.excite.reduce."),
          ("temporal_mixer.se.conv_expand.", "mixer.excite.restore."),
          ("temporal_mixer.conv_pwl.", "mixer.project."), ("temporal_mixer.bn3.", "mixer.project_norm."))
_GATE = (("conv1.", "squeeze."), ("bn1.", "norm."), ("conv_h.", "gate_h."), ("conv_w.", "gate_w."))
OPENSTL_KEYS = (
    (r"conv_in\.", "stem."),
    (r"conv_out\.", "head."),
    (r"translator2\.concat_block\.", "fuse."),
    (r"wavelet_embed1\.conv_0\.", "down_refine."),
    (r"wavelet_embed1\.conv_1\.", "down_lift."),
    (r"wavelet_embed1\.conv_emb\.", "down_embed."),
    (r"wavelet_recon1\.conv_0\.", "up_low."),
    (r"wavelet_recon1\.conv_hi\.", "up_high."),
    *[(rf"{theirs}\.blocks\.(\d+)\.{re.escape(inner)}", rf"{ours}.\1.{mine}")
      for theirs, ours in _STAGES.items() for inner, mine in _BLOCK],
    *[(rf"{theirs}\.blocks\.(\d+)\.{band}_frequency_attn\.{re.escape(inner)}",
       rf"{ours}.\1.{band}_gate.{mine}")
      for theirs, ours in _STAGES.items() for band in ("low", "high") for inner, mine in _GATE],
    *[(rf"{theirs}\.blocks\.(\d+)\.", rf"{ours}.\1.") for theirs, ours in _STAGES.items()],
)
# What OpenSTL's checkpoints hold that stbench derives or never uses: the Haar filters its wavelet
# modules register as buffers (from PyWavelets; stbench writes them down, tests/fixtures pin them) and
# each block's `layer_scale_2`, created and never used (both branches are scaled by `layer_scale_1`).
OPENSTL_DERIVED = ("wavelet_embed1.DWT.filters", "wavelet_recon1.IDWT.filters", "*.layer_scale_2")


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="wast", family="recurrent-free", build=lazy("stbench_wast.model:build_wast"),
                       hparams=configs["wast"],
                       description="WaST (Nie et al., AAAI 2024): 3-D Haar wavelet down/up path around "
                                   "time-frequency aware blocks, high-frequency focal loss",
                       checkpoint_ignore=OPENSTL_DERIVED, checkpoint_rename=OPENSTL_KEYS))
