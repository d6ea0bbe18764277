"""ConvLSTM (Shi et al., NeurIPS 2015): an LSTM whose gates are convolutions, stacked over patches."""
import torch
from torch import nn

from .recurrent import RecurrentPredictor, gate_conv, hidden_sizes, scheduled_sampling, stack_inputs


class ConvLSTMCell(nn.Module):
    """i, f, g, o from a convolution of the input plus one of the hidden state; no peepholes, no biases.

    The layout is OpenSTL's (the published FLOPs/params come from it): the paper's Hadamard
    peephole terms ``W_c o C`` and gate biases are left out.
    """

    def __init__(self, in_channels: int, num_hidden: int, filter_size: int, grid, layer_norm: bool):
        super().__init__()
        self.num_hidden = num_hidden
        self.conv_x = gate_conv(in_channels, 4 * num_hidden, filter_size, grid, layer_norm)
        self.conv_h = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)

    def forward(self, x, h, c):
        i, f, g, o = torch.split(self.conv_x(x) + self.conv_h(h), self.num_hidden, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(RecurrentPredictor):
    """Stacked ConvLSTM cells, each layer's hidden state the next layer's input."""

    def __init__(self, task, *, num_hidden, filter_size: int, patch_size: int, layer_norm: bool, sampling):
        sizes = hidden_sizes(num_hidden)
        super().__init__(task, patch_size=patch_size, top_channels=sizes[-1], sampling=sampling)
        self.cells = nn.ModuleList(
            ConvLSTMCell(n_in, n, filter_size, self.grid, layer_norm)
            for n_in, n in zip(stack_inputs(self.frame_channels, sizes), sizes))

    def initial_state(self, frame):
        b, _, h, w = frame.shape
        zeros = [frame.new_zeros(b, cell.num_hidden, h, w) for cell in self.cells]
        return zeros, list(zeros)

    def step(self, frame, state, with_aux):
        hs, cs = state
        hs, cs = list(hs), list(cs)
        net = frame
        for layer, cell in enumerate(self.cells):
            hs[layer], cs[layer] = cell(net, hs[layer], cs[layer])
            net = hs[layer]
        return net, (hs, cs), None


def build_convlstm(task, hparams):
    return ConvLSTM(task, num_hidden=hparams["num_hidden"], filter_size=int(hparams["filter_size"]),
                    patch_size=int(hparams["patch_size"]), layer_norm=bool(hparams["layer_norm"]),
                    sampling=scheduled_sampling(hparams))
