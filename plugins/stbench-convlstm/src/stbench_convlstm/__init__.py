"""stbench model plugin: ConvLSTM, and the recurrent rollout that the PredRNN family builds on.

``stbench_convlstm.recurrent`` is public: patches, scheduled-sampling schedules and
:class:`RecurrentPredictor` (the frame-by-frame rollout, inference and training loss).
"""
from pathlib import Path

from stbench import ModelSpec, hookimpl, load_yaml

from .convlstm import ConvLSTM, ConvLSTMCell, build_convlstm
from .recurrent import (RecurrentPredictor, ReverseScheduledSampling, ScheduledSampling, gate_conv, hidden_sizes,
                        reverse_scheduled_sampling, scheduled_sampling, stack_inputs)

__all__ = ["ConvLSTM", "ConvLSTMCell", "RecurrentPredictor", "ReverseScheduledSampling", "ScheduledSampling",
           "build_convlstm", "gate_conv", "hidden_sizes", "reverse_scheduled_sampling", "scheduled_sampling",
           "stack_inputs"]


@hookimpl
def stbench_register_models(register):
    configs = load_yaml(Path(__file__).with_name("configs.yaml"))
    register(ModelSpec(name="convlstm", family="recurrent", build=build_convlstm, hparams=configs["convlstm"],
                       description="ConvLSTM (Shi et al. 2015): convolutional LSTM cells stacked over frame patches"))
