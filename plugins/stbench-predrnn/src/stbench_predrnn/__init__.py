"""stbench model plugin: PredRNN, PredRNN++ and PredRNN-v2 on the rollout of ``stbench_convlstm``."""
from pathlib import Path

from stbench import ModelSpec, hookimpl, lazy, lazy_exports, load_yaml
from stbench_convlstm import OPENSTL_CELL_KEYS

__all__ = ["CausalLSTMCell", "GradientHighwayUnit", "PredRNN", "PredRNNpp", "PredRNNv2", "SpatioTemporalLSTMCell",
           "build_predrnn", "build_predrnnpp", "build_predrnnv2"]

# the model code loads when first used, so registering (and `stbench list`) imports no torch
__getattr__ = lazy_exports(__name__, {
    "cells": ("CausalLSTMCell", "GradientHighwayUnit", "SpatioTemporalLSTMCell"),
    "models": ("PredRNN", "PredRNNpp", "PredRNNv2", "build_predrnn", "build_predrnnpp", "build_predrnnv2"),
})

MODELS = {
    "predrnn": (lazy("stbench_predrnn.models:build_predrnn"),
                "PredRNN (Wang et al. 2017): spatio-temporal LSTM cells with a zig-zag memory flow"),
    "predrnnpp": (lazy("stbench_predrnn.models:build_predrnnpp"),
                  "PredRNN++ (Wang et al. 2018): causal LSTM cells and a gradient highway unit"),
    "predrnnv2": (lazy("stbench_predrnn.models:build_predrnnv2"),
                  "PredRNN-v2 (Wang et al. 2022): PredRNN with memory decoupling and reverse scheduled sampling"),
}


# OpenSTL's names: its cells as in stbench_convlstm; PredRNN++'s gradient highway keeps its gates as
# `gradient_highway.{x,z}_concat.0` (a Sequential, LayerNorm as `.1` when layer_norm is set).
OPENSTL_KEYS = OPENSTL_CELL_KEYS + (
    (r"gradient_highway\.(x|z)_concat\.0\.(?=weight$)", r"highway.conv_\1."),
    (r"gradient_highway\.(x|z)_concat\.", r"highway.conv_\1."),
)
# OpenSTL's causal LSTM cell creates an output gate conv it never uses (3,276,800 parameters at 4 x 128).
OPENSTL_UNUSED = {"predrnnpp": ("cell_list.*.conv_o.*",)}


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    for name, (build, description) in MODELS.items():
        register(ModelSpec(name=name, family="recurrent", build=build, hparams=configs[name],
                           description=description, checkpoint_ignore=OPENSTL_UNUSED.get(name, ()),
                           checkpoint_rename=OPENSTL_KEYS))
