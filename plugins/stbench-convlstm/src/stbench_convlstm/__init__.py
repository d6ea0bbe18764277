"""stbench model plugin: ConvLSTM, and the recurrent rollout that the PredRNN family builds on.

``stbench_convlstm.recurrent`` is public: patches, scheduled-sampling schedules and
:class:`RecurrentPredictor` (the frame-by-frame rollout, inference and training loss).
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml

__all__ = ["ConvLSTM", "ConvLSTMCell", "OPENSTL_CELL_KEYS", "RecurrentPredictor", "ReverseScheduledSampling",
           "ScheduledSampling", "build_convlstm", "gate_conv", "hidden_sizes", "reverse_scheduled_sampling",
           "scheduled_sampling", "stack_inputs"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {
    "convlstm": ("ConvLSTM", "ConvLSTMCell", "build_convlstm"),
    "recurrent": ("RecurrentPredictor", "ReverseScheduledSampling", "ScheduledSampling", "gate_conv", "hidden_sizes",
                  "reverse_scheduled_sampling", "scheduled_sampling", "stack_inputs"),
})


# OpenSTL's key names for the recurrent cells: `cell_list.N.<gate>.0.weight` is the convolution of a
# Sequential that holds a LayerNorm as `.1` when layer_norm is set; stbench's gate is the bare conv then.
OPENSTL_CELL_KEYS = (
    (r"cell_list\.(\d+)\.(\w+)\.0\.(?=weight$)", r"cells.\1.\2."),
    (r"cell_list\.", "cells."),
)
# OpenSTL's ConvLSTM cell creates an output gate conv and a 1x1 conv it never uses (3,407,872 parameters
# at the paper's 4 x 128 widths); the model-level conv_last is used and kept.
OPENSTL_CONVLSTM_UNUSED = ("cell_list.*.conv_o.*", "cell_list.*.conv_last.*")


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="convlstm", family="recurrent", build=lazy("stbench_convlstm.convlstm:build_convlstm"),
                       hparams=configs["convlstm"],
                       description="ConvLSTM (Shi et al. 2015): convolutional LSTM cells stacked over frame patches",
                       checkpoint_ignore=OPENSTL_CONVLSTM_UNUSED, checkpoint_rename=OPENSTL_CELL_KEYS))
