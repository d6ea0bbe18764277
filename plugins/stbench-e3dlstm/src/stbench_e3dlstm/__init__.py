"""stbench model plugin: E3D-LSTM (Eidetic 3D LSTM) on the recurrent rollout of ``stbench_convlstm``."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["E3DLSTM", "E3DLSTMCell", "OPENSTL_KEYS", "WindowConv", "WindowReadout", "build_e3dlstm", "recall"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {
    "e3dlstm": ("E3DLSTM", "E3DLSTMCell", "WindowConv", "WindowReadout", "build_e3dlstm", "recall"),
})

# OpenSTL's names (E3DLSTM_Model): each gate is a Sequential whose `.0` wraps its Conv3d as `.conv3d`
# (LayerNorm as `.1` when layer_norm is set; stbench's gate is the bare conv otherwise), the cell's 1x1
# fuse is `conv_last.conv3d`, its cell-state norm `_norm_c_t`, and the cells are `cell_list`.
OPENSTL_KEYS = (
    (r"cell_list\.(\d+)\.(\w+)\.0\.conv3d\.", r"cells.\1.\2."),
    (r"cell_list\.(\d+)\.(\w+)\.0\.conv3d\.", r"cells.\1.\2.0."),
    (r"cell_list\.(\d+)\.conv_last\.conv3d\.", r"cells.\1.conv_last."),
    (r"cell_list\.(\d+)\._norm_c_t\.", r"cells.\1.norm_cell."),
    (r"cell_list\.", "cells."),
)


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="e3dlstm", family="recurrent", build=lazy("stbench_e3dlstm.e3dlstm:build_e3dlstm"),
                       hparams=configs["e3dlstm"],
                       description="E3D-LSTM (Wang et al. 2019): 3D-convolution LSTM cells over frame windows "
                                   "with an eidetic memory attending over past cell states",
                       checkpoint_rename=OPENSTL_KEYS))
