"""stbench model plugin: SwinLSTM (Tang et al., ICCV 2023), the deep (D) and base (B) models of OpenSTL and the authors."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["REFERENCE_KEYS", "REFERENCE_UNUSED", "SwinBlock", "SwinLSTM", "SwinLSTMCell", "build_swinlstm"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"model": ("SwinBlock", "SwinLSTM", "SwinLSTMCell", "build_swinlstm")})

# Key names of the two references. OpenSTL (openstl/modules/swinlstm_modules.py) keeps the blocks of a
# cell in `STBs`; the authors' code (SongTang-x/SwinLSTM, SwinLSTM_D.py / SwinLSTM_B.py) in `Swin.layers`.
# Both call the input-fusing linear layer `red`. Model D: `Downsample` / `Upsample` hold the cells
# (`layers`), the patch merging (`downsample`) and expanding (`upsample`) layers; the read-out is
# `Upsample.Unembed.Conv`. Model B: `ST` holds the embedding, OpenSTL's single cell `layer` (the authors'
# list `layers`) and the read-out (`patch_inflated.Conv`; the authors' `PatchInflated.ConvT`).
_BLOCKS = r"(?:STBs|Swin\.layers)"
REFERENCE_KEYS = (
    (r"Downsample\.patch_embed\.", "embed."),
    (rf"Downsample\.layers\.(\d+)\.{_BLOCKS}\.(\d+)\.red\.", r"down.\1.cell.blocks.\2.fuse."),
    (rf"Downsample\.layers\.(\d+)\.{_BLOCKS}\.", r"down.\1.cell.blocks."),
    (r"Downsample\.downsample\.(\d+)\.", r"down.\1.merge."),
    (rf"Upsample\.layers\.(\d+)\.{_BLOCKS}\.(\d+)\.red\.", r"up.\1.cell.blocks.\2.fuse."),
    (rf"Upsample\.layers\.(\d+)\.{_BLOCKS}\.", r"up.\1.cell.blocks."),
    (r"Upsample\.upsample\.(\d+)\.", r"up.\1.expand."),
    (r"Upsample\.Unembed\.Conv\.", "read_out."),
    (r"ST\.patch_embed\.", "embed."),
    (r"ST\.layer\.STBs\.(\d+)\.red\.", r"cells.0.blocks.\1.fuse."),
    (r"ST\.layer\.STBs\.", "cells.0.blocks."),
    (r"ST\.layers\.(\d+)\.Swin\.layers\.(\d+)\.red\.", r"cells.\1.blocks.\2.fuse."),
    (r"ST\.layers\.(\d+)\.Swin\.layers\.", r"cells.\1.blocks."),
    (r"ST\.(?:patch_inflated\.Conv|PatchInflated\.ConvT)\.", "read_out."),
)
# What both references create and never use: the `red` layer of every odd block (those blocks take no
# second input), the D model's `Upsample.patch_embed` (its up path starts from the down path's tokens),
# and two buffers that follow from the window size alone (rebuilt here, not stored).
REFERENCE_UNUSED = (
    "*.STBs.[13579].red.*", "*.STBs.[1-9][13579].red.*",
    "*.Swin.layers.[13579].red.*", "*.Swin.layers.[1-9][13579].red.*",
    "Upsample.patch_embed.*",
    "*.relative_position_index", "*.attn_mask",
)


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="swinlstm", family="recurrent", build=lazy("stbench_swinlstm.model:build_swinlstm"),
                       hparams=configs["swinlstm"],
                       description="SwinLSTM (Tang et al. 2023): LSTM cells whose gates are Swin Transformer blocks; "
                                   "variant D (down/up-sampling cells) or B (one cell)",
                       checkpoint_ignore=REFERENCE_UNUSED, checkpoint_rename=REFERENCE_KEYS))
