"""MIM (Wang et al., CVPR 2019): an ST-LSTM bottom layer, then MIM blocks fed by a cascade of MIM-N cells."""
from dataclasses import dataclass
from typing import List

import torch
from torch import nn

from stbench import UserError
from stbench_convlstm import RecurrentPredictor, gate_conv, hidden_sizes, scheduled_sampling
from stbench_predrnn import SpatioTemporalLSTMCell

FORGET_BIAS = 1.0  # added to every forget gate, as in the authors' code


class PeepholeConvLSTMCell(nn.Module):
    """A ConvLSTM cell with Hadamard peepholes: MIM's non-stationary (MIM-N) and stationary (MIM-S) modules.

    Gates ``i, g, f, o`` (in that channel order) come from 'same' convolutions of the input and
    of ``h``; the input and forget gates also see ``c_{t-1}`` and the output gate sees ``c_t``,
    each through a per-position weight ``[C, h, w]`` (``peephole_c`` holds the i and f ones).
    The peepholes start at zero, as in OpenSTL.
    """

    def __init__(self, num_hidden: int, filter_size: int, grid, layer_norm: bool):
        super().__init__()
        self.num_hidden = num_hidden
        self.conv_h = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)  # i g f o
        self.conv_x = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)  # i g f o
        self.peephole_c = nn.Parameter(torch.zeros(2 * num_hidden, *grid))  # i f
        self.peephole_o = nn.Parameter(torch.zeros(num_hidden, *grid))

    def forward(self, x, h, c):
        i_h, g_h, f_h, o_h = torch.split(self.conv_h(h), self.num_hidden, dim=1)
        i_c, f_c = torch.split(c.repeat(1, 2, 1, 1) * self.peephole_c, self.num_hidden, dim=1)
        i_x, g_x, f_x, o_x = torch.split(self.conv_x(x), self.num_hidden, dim=1)
        # sums in OpenSTL's order, so its weights give bit-identical outputs
        i = torch.sigmoid(i_h + i_c + i_x)
        f = torch.sigmoid(f_h + f_c + f_x + FORGET_BIAS)
        c = f * c + i * torch.tanh(g_h + g_x)
        h = torch.sigmoid(o_h + o_x + c * self.peephole_o) * torch.tanh(c)
        return h, c


class MIMBlock(nn.Module):
    """A MIM block: ST-LSTM whose forget gate on the temporal memory is replaced by MIM-S.

    The spatio-temporal memory M is updated as in ST-LSTM. The temporal memory becomes
    ``C_t = T_t + i*g``, where ``T_t`` is MIM-S's output for the non-stationary features ``D_t``
    (from MIM-N) and the previous ``C``; MIM-S keeps its own memory ``S``. The hidden state is
    ``o * tanh(W_1x1 * [C, M])`` with the output gate from the input, ``H`` and ``M`` (no memory
    convolution, unlike ST-LSTM). Gate channel orders follow OpenSTL: input and M ``i g f o``,
    ``H`` ``i g o``.
    """

    def __init__(self, num_hidden: int, filter_size: int, grid, layer_norm: bool):
        super().__init__()
        self.num_hidden = num_hidden
        self.conv_x = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)  # i g f' o
        self.conv_h = gate_conv(num_hidden, 3 * num_hidden, filter_size, grid, layer_norm)  # i g o
        self.conv_m = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)  # i' g' f' o
        self.stationary = PeepholeConvLSTMCell(num_hidden, filter_size, grid, layer_norm)
        self.conv_last = nn.Conv2d(2 * num_hidden, num_hidden, kernel_size=1, bias=False)

    def forward(self, x, diff_h, h, c, m, s):
        """``(H, C, M, S)`` after input ``x`` (the layer below's H) and MIM-N's output ``diff_h``."""
        i_m, g_m, f_m, o_m = torch.split(self.conv_m(m), self.num_hidden, dim=1)
        i_h, g_h, o_h = torch.split(self.conv_h(h), self.num_hidden, dim=1)
        i_x, g_x, f_x, o_x = torch.split(self.conv_x(x), self.num_hidden, dim=1)

        m = (torch.sigmoid(f_x + f_m + FORGET_BIAS) * m
             + torch.sigmoid(i_x + i_m) * torch.tanh(g_x + g_m))
        # OpenSTL passes MIM-S its memory detached: no gradient flows through S from one step to the next
        stationary, s = self.stationary(diff_h, c, s.detach())
        c = stationary + torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
        h = torch.sigmoid(o_x + o_h + o_m) * torch.tanh(self.conv_last(torch.cat([c, m], dim=1)))
        return h, c, m, s


@dataclass
class MIMState:
    """Everything MIM carries from one step to the next (lists are per layer; MIM-N and S per block)."""

    h: List[torch.Tensor]
    c: List[torch.Tensor]
    m: torch.Tensor
    s: List[torch.Tensor]
    diff_h: List[torch.Tensor]
    diff_c: List[torch.Tensor]
    first: bool


class MIM(RecurrentPredictor):
    """MIM (Memory In Memory, Wang et al. CVPR 2019) on the shared recurrent rollout.

    Layer 1 is an ST-LSTM cell; layers 2..L are MIM blocks. Block ``l`` gets its non-stationary
    input from MIM-N cell ``l-1``: the first MIM-N sees the step-to-step difference of layer 1's
    hidden state, each further one the output of the MIM-N below it (a cascade of differences).
    The spatio-temporal memory M zig-zags through all layers as in PredRNN. At the first step
    no difference exists: the MIM-N cells do not run and the blocks see zeros.
    """

    def __init__(self, task, *, num_hidden, filter_size: int, patch_size: int, layer_norm: bool, sampling):
        sizes = hidden_sizes(num_hidden)
        if len(sizes) < 2:
            raise UserError(f"mim stacks an ST-LSTM layer and at least one MIM block, so it needs at least two "
                            f"layers; got num_hidden={sizes}: list two or more widths (--set num_hidden=[64,64])")
        if len(set(sizes)) != 1:
            raise UserError(f"mim passes one memory through every layer and feeds each MIM block the same width "
                            f"from below, so all layers need the same width; got num_hidden={sizes}: give every "
                            f"layer one width (--set num_hidden=[{sizes[0]},{sizes[0]}])")
        super().__init__(task, patch_size=patch_size, top_channels=sizes[-1], sampling=sampling)
        self.num_hidden = n = sizes[0]
        self.cells = nn.ModuleList(
            [SpatioTemporalLSTMCell(self.frame_channels, n, filter_size, self.grid, layer_norm)]
            + [MIMBlock(n, filter_size, self.grid, layer_norm) for _ in sizes[1:]])
        self.non_stationary = nn.ModuleList(
            PeepholeConvLSTMCell(n, filter_size, self.grid, layer_norm) for _ in sizes[1:])

    def initial_state(self, frame):
        b, _, h, w = frame.shape
        zeros = frame.new_zeros(b, self.num_hidden, h, w)
        layers, blocks = len(self.cells), len(self.non_stationary)
        return MIMState(h=[zeros] * layers, c=[zeros] * layers, m=zeros, s=[zeros] * blocks,
                        diff_h=[zeros] * blocks, diff_c=[zeros] * blocks, first=True)

    def step(self, frame, state, with_aux):
        h, c, s, diff_h, diff_c = list(state.h), list(state.c), list(state.s), list(state.diff_h), list(state.diff_c)
        previous_bottom = h[0]
        h[0], c[0], m = self.cells[0](frame, h[0], c[0], state.m)[:3]
        for layer in range(1, len(self.cells)):
            k = layer - 1
            if not state.first:
                change = h[0] - previous_bottom if k == 0 else diff_h[k - 1]
                diff_h[k], diff_c[k] = self.non_stationary[k](change, diff_h[k], diff_c[k])
            h[layer], c[layer], m, s[k] = self.cells[layer](h[layer - 1], diff_h[k], h[layer], c[layer], m, s[k])
        return h[-1], MIMState(h=h, c=c, m=m, s=s, diff_h=diff_h, diff_c=diff_c, first=False), None


def build_mim(task, hparams):
    return MIM(task, num_hidden=hparams["num_hidden"], filter_size=int(hparams["filter_size"]),
               patch_size=int(hparams["patch_size"]), layer_norm=bool(hparams["layer_norm"]),
               sampling=scheduled_sampling(hparams))
