"""stbench model plugin: MIM (Memory In Memory) on the rollout of ``stbench_convlstm``."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["MIM", "MIMBlock", "MIMState", "PeepholeConvLSTMCell", "build_mim", "OPENSTL_KEYS", "OPENSTL_UNUSED"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {"mim": ("MIM", "MIMBlock", "MIMState", "PeepholeConvLSTMCell", "build_mim")})


def _gates(prefix: str, target: str, names) -> tuple:
    """Rename rules for OpenSTL gates ``<prefix>.N.<name>``: the conv of a Sequential (``.0``; a LayerNorm
    is ``.1`` when layer_norm is set, kept as it is) or a bare tensor."""
    rules = []
    for theirs, ours in names.items():
        rules.append((rf"{prefix}\.(\d+)\.{theirs}\.0\.(?=weight$)", rf"{target}.\1.{ours}."))
        rules.append((rf"{prefix}\.(\d+)\.{theirs}(?=\.|$)", rf"{target}.\1.{ours}"))
    return tuple(rules)


# OpenSTL's MIM_Model: `stlstm_layer.0` is the ST-LSTM cell (PredRNN's names), `stlstm_layer.N` the MIM
# blocks (their MIM-S gates `conv_{h,x}_concat`, peepholes `ct_weight` / `oc_weight`), `stlstm_layer_diff.N`
# the MIM-N cells.
OPENSTL_KEYS = (
    _gates("stlstm_layer", "cells", {
        "conv_t_cc": "conv_h", "conv_s_cc": "conv_m", "conv_x_cc": "conv_x",
        "conv_h_concat": "stationary.conv_h", "conv_x_concat": "stationary.conv_x",
        "ct_weight": "stationary.peephole_c", "oc_weight": "stationary.peephole_o"})
    + _gates("stlstm_layer_diff", "non_stationary", {
        "conv_h_concat": "conv_h", "conv_x_concat": "conv_x", "ct_weight": "peephole_c", "oc_weight": "peephole_o"})
    + ((r"stlstm_layer\.(\d+)\.(\w+)\.0\.(?=weight$)", r"cells.\1.\2."),  # the ST-LSTM cell's gates
       (r"stlstm_layer\.", "cells."))
)
# OpenSTL's MIM-N cell creates a 1x1 `conv_last` (2h -> h) its forward never calls: 98,304 parameters at
# the paper's 4 x 128.
OPENSTL_UNUSED = ("stlstm_layer_diff.*.conv_last.*",)


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="mim", family="recurrent", build=lazy("stbench_mim.mim:build_mim"),
                       hparams=configs["mim"],
                       description="MIM (Wang et al. 2019): ST-LSTM, then Memory-In-Memory blocks fed by "
                                   "differences of hidden states",
                       checkpoint_ignore=OPENSTL_UNUSED, checkpoint_rename=OPENSTL_KEYS))
