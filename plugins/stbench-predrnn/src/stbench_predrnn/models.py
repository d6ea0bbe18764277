"""PredRNN, PredRNN++ and PredRNN-v2: stacks of memory cells with a zig-zag spatio-temporal memory flow."""
import torch
import torch.nn.functional as F
from torch import nn

from stbench import UserError
from stbench_convlstm import (RecurrentPredictor, hidden_sizes, reverse_scheduled_sampling, scheduled_sampling,
                              stack_inputs)

from .cells import CausalLSTMCell, GradientHighwayUnit, SpatioTemporalLSTMCell


class ZigZagStack(RecurrentPredictor):
    """Cells of one width stacked so the spatio-temporal memory M climbs the layers at each time
    step and flows from the top layer back to the bottom one at the next step."""

    cell_class = SpatioTemporalLSTMCell

    def __init__(self, task, *, num_hidden, filter_size: int, patch_size: int, layer_norm: bool, sampling):
        sizes = hidden_sizes(num_hidden)
        if len(set(sizes)) != 1:
            raise UserError(f"{type(self).__name__.lower()} passes one memory through every layer, so all layers "
                            f"need the same width; got num_hidden={sizes}")
        super().__init__(task, patch_size=patch_size, top_channels=sizes[-1], sampling=sampling)
        self.num_hidden = sizes[0]
        self.cells = nn.ModuleList(
            self.cell_class(n_in, n, filter_size, self.grid, layer_norm)
            for n_in, n in zip(stack_inputs(self.frame_channels, sizes), sizes))

    def initial_state(self, frame):
        b, _, h, w = frame.shape
        zeros = frame.new_zeros(b, self.num_hidden, h, w)
        return [zeros] * len(self.cells), [zeros] * len(self.cells), zeros

    def step(self, frame, state, with_aux):
        hs, cs, m = list(state[0]), list(state[1]), state[2]
        net = frame
        for layer, cell in enumerate(self.cells):
            hs[layer], cs[layer], m = cell(net, hs[layer], cs[layer], m)[:3]
            net = hs[layer]
        return net, (hs, cs, m), None


class PredRNN(ZigZagStack):
    """PredRNN (Wang et al., NeurIPS 2017): spatio-temporal LSTM cells with the zig-zag memory flow."""


class PredRNNpp(ZigZagStack):
    """PredRNN++ (Wang et al., ICML 2018): causal LSTM cells, plus a gradient highway unit between
    the first and second layers."""

    cell_class = CausalLSTMCell

    def __init__(self, task, *, num_hidden, filter_size: int, patch_size: int, layer_norm: bool, sampling):
        super().__init__(task, num_hidden=num_hidden, filter_size=filter_size, patch_size=patch_size,
                         layer_norm=layer_norm, sampling=sampling)
        if len(self.cells) < 2:
            raise UserError(f"predrnnpp puts its gradient highway between layers 1 and 2, so it needs at least two "
                            f"layers; got num_hidden={num_hidden}")
        self.highway = GradientHighwayUnit(self.num_hidden, filter_size, self.grid, layer_norm)

    def initial_state(self, frame):
        hs, cs, m = super().initial_state(frame)
        return hs, cs, m, m  # the highway state Z starts at zero too

    def step(self, frame, state, with_aux):
        hs, cs, m, z = list(state[0]), list(state[1]), state[2], state[3]
        net = frame
        for layer, cell in enumerate(self.cells):
            hs[layer], cs[layer], m = cell(net, hs[layer], cs[layer], m)
            net = hs[layer]
            if layer == 0:
                z = net = self.highway(net, z)
        return net, (hs, cs, m, z), None


class PredRNNv2(ZigZagStack):
    """PredRNN-v2 (Wang et al., TPAMI 2022): PredRNN trained with reverse scheduled sampling and a
    memory-decoupling loss.

    The decoupling loss pushes the increments of C and M apart: both go through one shared 1x1
    ``adapter`` and, per channel, the absolute cosine similarity of their spatial maps is averaged
    over layers, steps, channels and samples, weighted by ``decouple_beta``. The adapter exists
    for that loss only, so inference skips it.
    """

    def __init__(self, task, *, decouple_beta: float, **kwargs):
        super().__init__(task, **kwargs)
        self.decouple_beta = decouple_beta
        self.adapter = nn.Conv2d(self.num_hidden, self.num_hidden, kernel_size=1, bias=False)

    def step(self, frame, state, with_aux):
        hs, cs, m = list(state[0]), list(state[1]), state[2]
        net, decoupling = frame, []
        for layer, cell in enumerate(self.cells):
            hs[layer], cs[layer], m, delta_c, delta_m = cell(net, hs[layer], cs[layer], m)
            net = hs[layer]
            if with_aux:
                similarity = F.cosine_similarity(self.adapter(delta_c).flatten(2), self.adapter(delta_m).flatten(2),
                                                 dim=2)
                decoupling.append(similarity.abs().mean())
        return net, (hs, cs, m), torch.stack(decoupling).mean() if with_aux else None

    def loss(self, x, y, step):
        mse, decoupling = self.teacher_forced(x, y, step, with_aux=True)
        return mse + self.decouple_beta * torch.stack(decoupling).mean()


def _common(hparams):
    return dict(num_hidden=hparams["num_hidden"], filter_size=int(hparams["filter_size"]),
                patch_size=int(hparams["patch_size"]), layer_norm=bool(hparams["layer_norm"]))


def build_predrnn(task, hparams):
    return PredRNN(task, **_common(hparams), sampling=scheduled_sampling(hparams))


def build_predrnnpp(task, hparams):
    return PredRNNpp(task, **_common(hparams), sampling=scheduled_sampling(hparams))


def build_predrnnv2(task, hparams):
    return PredRNNv2(task, **_common(hparams), sampling=reverse_scheduled_sampling(hparams),
                     decouple_beta=float(hparams["decouple_beta"]))
