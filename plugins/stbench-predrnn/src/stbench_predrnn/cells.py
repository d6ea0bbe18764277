"""The cells: spatio-temporal LSTM (PredRNN, v2), causal LSTM and the gradient highway unit (PredRNN++)."""
import torch
from torch import nn

from stbench_convlstm import gate_conv

FORGET_BIAS = 1.0  # added to every forget gate, as in the authors' code


class SpatioTemporalLSTMCell(nn.Module):
    """ST-LSTM (Wang et al., NeurIPS 2017): a temporal memory C and a spatio-temporal memory M.

    C is updated from the input and the layer's previous hidden state, M from the input and the
    M that just left the layer below (the zig-zag flow). The output gate sees both memories
    through a convolution, and the hidden state is ``o * tanh(W_1x1 * [C, M])``. Returns the
    increments ``i*g`` of both memories as well: PredRNN-v2 decouples them.
    """

    def __init__(self, in_channels: int, num_hidden: int, filter_size: int, grid, layer_norm: bool):
        super().__init__()
        self.num_hidden = num_hidden
        self.conv_x = gate_conv(in_channels, 7 * num_hidden, filter_size, grid, layer_norm)  # i f g i' f' g' o
        self.conv_h = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)  # i f g o
        self.conv_m = gate_conv(num_hidden, 3 * num_hidden, filter_size, grid, layer_norm)  # i' f' g'
        self.conv_o = gate_conv(2 * num_hidden, num_hidden, filter_size, grid, layer_norm)
        self.conv_last = nn.Conv2d(2 * num_hidden, num_hidden, kernel_size=1, bias=False)

    def forward(self, x, h, c, m):
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = torch.split(self.conv_x(x), self.num_hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), self.num_hidden, dim=1)
        i_m, f_m, g_m = torch.split(self.conv_m(m), self.num_hidden, dim=1)

        delta_c = torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
        c = torch.sigmoid(f_x + f_h + FORGET_BIAS) * c + delta_c
        delta_m = torch.sigmoid(i_xm + i_m) * torch.tanh(g_xm + g_m)
        m = torch.sigmoid(f_xm + f_m + FORGET_BIAS) * m + delta_m

        memory = torch.cat([c, m], dim=1)
        h = torch.sigmoid(o_x + o_h + self.conv_o(memory)) * torch.tanh(self.conv_last(memory))
        return h, c, m, delta_c, delta_m


class CausalLSTMCell(nn.Module):
    """Causal LSTM (Wang et al., ICML 2018): the temporal memory C, then M computed from the new C.

    A cascade, not two parallel memories: ``C_t`` is updated first (from x, H_{t-1}, C_{t-1}), then
    ``M_t`` from x, the new ``C_t`` and the incoming M (whose own path goes through tanh(W * M)).
    The gate layout is OpenSTL's executed graph (where the published FLOPs come from): output gate
    ``tanh(o_x + o_h + o_c + o_m)`` with ``o_c`` from the C->M convolution and ``o_m`` from the new M.
    """

    def __init__(self, in_channels: int, num_hidden: int, filter_size: int, grid, layer_norm: bool):
        super().__init__()
        self.num_hidden = num_hidden
        self.conv_x = gate_conv(in_channels, 7 * num_hidden, filter_size, grid, layer_norm)  # i f g i' f' g' o
        self.conv_h = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)  # i f g o
        self.conv_c = gate_conv(num_hidden, 3 * num_hidden, filter_size, grid, layer_norm)  # i f g
        self.conv_m = gate_conv(num_hidden, 3 * num_hidden, filter_size, grid, layer_norm)  # i' f' and W*M
        self.conv_c2m = gate_conv(num_hidden, 4 * num_hidden, filter_size, grid, layer_norm)  # i' g' f' o
        self.conv_om = gate_conv(num_hidden, num_hidden, filter_size, grid, layer_norm)
        self.conv_last = nn.Conv2d(2 * num_hidden, num_hidden, kernel_size=1, bias=False)

    def forward(self, x, h, c, m):
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = torch.split(self.conv_x(x), self.num_hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), self.num_hidden, dim=1)
        i_c, f_c, g_c = torch.split(self.conv_c(c), self.num_hidden, dim=1)
        i_m, f_m, m_m = torch.split(self.conv_m(m), self.num_hidden, dim=1)

        c = (torch.sigmoid(f_x + f_h + f_c + FORGET_BIAS) * c
             + torch.sigmoid(i_x + i_h + i_c) * torch.tanh(g_x + g_h + g_c))

        i_cm, g_cm, f_cm, o_c = torch.split(self.conv_c2m(c), self.num_hidden, dim=1)
        m = (torch.sigmoid(f_xm + f_m + f_cm + FORGET_BIAS) * torch.tanh(m_m)
             + torch.sigmoid(i_xm + i_m + i_cm) * torch.tanh(g_xm + g_cm))

        o = torch.tanh(o_x + o_h + o_c + self.conv_om(m))
        h = o * torch.tanh(self.conv_last(torch.cat([c, m], dim=1)))
        return h, c, m


class GradientHighwayUnit(nn.Module):
    """GHU (PredRNN++): ``Z_t = u * tanh(P) + (1 - u) * Z_{t-1}``, a gated shortcut across time.

    Sits between the first and second causal LSTM layers so gradients reach early inputs
    without passing through every cell. Weights start small (uniform +-0.001), as in the authors' code.
    """

    def __init__(self, num_hidden: int, filter_size: int, grid, layer_norm: bool, init_range: float = 1e-3):
        super().__init__()
        self.num_hidden = num_hidden
        self.conv_x = gate_conv(num_hidden, 2 * num_hidden, filter_size, grid, layer_norm)
        self.conv_z = gate_conv(num_hidden, 2 * num_hidden, filter_size, grid, layer_norm)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.uniform_(module.weight, -init_range, init_range)

    def forward(self, x, z):
        p, u = torch.split(self.conv_x(x) + self.conv_z(z), self.num_hidden, dim=1)
        u = torch.sigmoid(u)
        return u * torch.tanh(p) + (1 - u) * z
