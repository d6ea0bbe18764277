"""E3D-LSTM (Wang et al., ICLR 2019): LSTM cells with 3D-convolution gates over a window of frames and an
eidetic memory that attends over every past cell state."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import UserError
from stbench_convlstm import RecurrentPredictor, hidden_sizes, scheduled_sampling, stack_inputs

WINDOW = 2  # input frames (and hidden-state slices) a step sees; both reference codes fix 2, stride 1
TEMPORAL_KERNEL = 2  # temporal extent of every gate convolution (the references' (2, 5, 5) kernels)
FORGET_BIAS = 1.0


class WindowConv(nn.Conv3d):
    """A bias-free 3D convolution over a ``[B, C, T, H, W]`` window, resized back to the window's T x H x W.

    There is no temporal padding, so a kernel as long as the window leaves one time slice, and a
    stride > 1 a coarser grid; nearest-neighbour resizing copies the result back over the window
    (OpenSTL's ``tf_Conv3d``).
    """

    def __init__(self, in_channels: int, out_channels: int, temporal: int, filter_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, (temporal, filter_size, filter_size), stride=stride,
                         padding=(0, filter_size // 2, filter_size // 2), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if out.shape[2:] != x.shape[2:]:
            out = F.interpolate(out, size=x.shape[2:], mode="nearest")
        return out


def gate_conv(in_channels: int, out_channels: int, filter_size: int, stride: int, window_grid: Tuple[int, int, int],
              layer_norm: bool) -> nn.Module:
    """A gate's :class:`WindowConv`, followed by LayerNorm over (C, T, H, W) when ``layer_norm``."""
    conv = WindowConv(in_channels, out_channels, TEMPORAL_KERNEL, filter_size, stride)
    return nn.Sequential(conv, nn.LayerNorm([out_channels, *window_grid])) if layer_norm else conv


def recall(query: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """The eidetic read-out: ``softmax(q k^T) v`` with the stored cell states as keys and values.

    ``query`` is ``[B, C, T, H, W]``; ``history`` holds ``[B, N, C]`` tokens. The query becomes
    tokens the way OpenSTL makes them: its memory read in runs of C values, without moving the
    channels last (see README, "Deviations"). No scaling, as in both references.
    """
    b, c = query.shape[:2]
    weights = torch.softmax(query.reshape(b, -1, c) @ history.transpose(1, 2), dim=2)
    return (weights @ history).reshape(query.shape)


def memory_tokens(cell: torch.Tensor) -> torch.Tensor:
    """A cell state ``[B, C, T, H, W]`` as the attention's ``[B, T*H*W, C]`` tokens (runs of C values)."""
    return cell.reshape(cell.shape[0], -1, cell.shape[1])


class E3DLSTMCell(nn.Module):
    """The eidetic 3D LSTM unit: gates from 3D convolutions over windows; the cell state reads a
    softmax attention over all of its own past states (the eidetic memory) instead of a forget gate;
    a second, global memory M has its own input/forget gates.

    The layout is OpenSTL's: bias-free convolutions, LayerNorm over the whole cell state (``norm_cell``,
    with per-element affine weights), the output gate ``tanh(o_x + o_h + o_c + o_m)`` passed through
    a sigmoid, and ``H = sigmoid(o) * tanh(W_1x1 * [C, M])``.
    """

    def __init__(self, in_channels: int, num_hidden: int, filter_size: int, stride: int,
                 window_grid: Tuple[int, int, int], layer_norm: bool):
        super().__init__()
        self.num_hidden = num_hidden
        self.norm_cell = nn.LayerNorm([num_hidden, *window_grid])
        self.conv_x = gate_conv(in_channels, 7 * num_hidden, filter_size, stride, window_grid, layer_norm)
        self.conv_h = gate_conv(num_hidden, 4 * num_hidden, filter_size, stride, window_grid, layer_norm)
        self.conv_gm = gate_conv(num_hidden, 4 * num_hidden, filter_size, stride, window_grid, layer_norm)
        self.conv_new_cell = gate_conv(num_hidden, num_hidden, filter_size, stride, window_grid, layer_norm)
        self.conv_new_gm = gate_conv(num_hidden, num_hidden, filter_size, stride, window_grid, layer_norm)
        self.conv_last = WindowConv(2 * num_hidden, num_hidden, 1, 1)

    def forward(self, x, h, c, m, history):
        """``(H, C)`` after one step; ``history`` holds the tokens of every cell state so far, ``c`` included.

        The updated global memory feeds this step's output only: like both reference codes, the cell
        hands on the M it was given (see README), so the caller keeps passing the same M.
        """
        i_h, g_h, r_h, o_h = torch.split(self.conv_h(h), self.num_hidden, dim=1)
        i_x, g_x, r_x, o_x, mi_x, mg_x, mf_x = torch.split(self.conv_x(x), self.num_hidden, dim=1)
        i = torch.sigmoid(i_x + i_h)
        r = torch.sigmoid(r_x + r_h)
        g = torch.tanh(g_x + g_h)
        c = self.norm_cell(c + recall(r, history)) + i * g

        i_m, f_m, g_m, m_m = torch.split(self.conv_gm(m), self.num_hidden, dim=1)
        mi = torch.sigmoid(mi_x + i_m)
        mf = torch.sigmoid(mf_x + f_m + FORGET_BIAS)
        mg = torch.tanh(mg_x + g_m)
        m = mf * torch.tanh(m_m) + mi * mg

        o = torch.tanh(o_x + o_h + self.conv_new_cell(c) + self.conv_new_gm(m))
        h = torch.tanh(self.conv_last(torch.cat([c, m], dim=1))) * torch.sigmoid(o)
        return h, c


class WindowReadout(nn.Conv3d):
    """A patch frame from the top hidden window: a bias-free convolution spanning the whole window."""

    def __init__(self, in_channels: int, out_channels: int, window: int):
        super().__init__(in_channels, out_channels, (window, 1, 1), stride=(window, 1, 1), bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden).squeeze(2)


class E3DLSTM(RecurrentPredictor):
    """Stacked eidetic 3D LSTM cells over patches; each step sees the last ``WINDOW`` input frames.

    Step ``t`` stacks inputs ``t-1`` and ``t`` (a zero frame before the first) into a window; every
    hidden and cell state is a window too. Each layer keeps the tokens of all its cell states so far
    (the initial zeros included) for the eidetic attention. Training minimises MSE + L1 over all
    next-frame targets (OpenSTL's loss) under scheduled sampling.
    """

    def __init__(self, task, *, num_hidden, filter_size: int, stride: int, patch_size: int, layer_norm: bool,
                 sampling):
        sizes = hidden_sizes(num_hidden)
        if len(set(sizes)) != 1:
            raise UserError(f"e3dlstm passes one global memory through every layer, so all layers need the same "
                            f"width; got num_hidden={sizes}")
        if filter_size < 1 or stride < 1:
            raise UserError(f"e3dlstm needs filter_size >= 1 and stride >= 1, got filter_size={filter_size}, "
                            f"stride={stride}")
        super().__init__(task, patch_size=patch_size, top_channels=sizes[-1], sampling=sampling)
        self.num_hidden = sizes[0]
        window_grid = (WINDOW, *self.grid)
        self.cells = nn.ModuleList(
            E3DLSTMCell(n_in, n, filter_size, stride, window_grid, layer_norm)
            for n_in, n in zip(stack_inputs(self.frame_channels, sizes), sizes))
        # replaces the base class's 1x1 read-out: the top state is a window, collapsed to one frame
        self.conv_last = WindowReadout(sizes[-1], self.frame_channels, WINDOW)

    def initial_state(self, frame):
        b, _, h, w = frame.shape
        zeros = frame.new_zeros(b, self.num_hidden, WINDOW, h, w)
        no_tokens = frame.new_zeros(b, 0, self.num_hidden)
        layers = len(self.cells)
        # (earlier inputs of the window, H, C, eidetic tokens, global memory M)
        return [torch.zeros_like(frame)] * (WINDOW - 1), [zeros] * layers, [zeros] * layers, [no_tokens] * layers, zeros

    def step(self, frame, state, with_aux):
        inputs, hs, cs, histories, memory = state
        inputs, hs, cs, histories = [*inputs, frame], list(hs), list(cs), list(histories)
        net = torch.stack(inputs, dim=2)
        for layer, cell in enumerate(self.cells):
            histories[layer] = torch.cat([histories[layer], memory_tokens(cs[layer])], dim=1)
            hs[layer], cs[layer] = cell(net, hs[layer], cs[layer], memory, histories[layer])
            net = hs[layer]
        return net, (inputs[1:], hs, cs, histories, memory), None

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """MSE + L1 over all ``T_in + T_out - 1`` next-frame targets under the sampling schedule."""
        frames = self.to_patches(torch.cat([x, y], dim=1))
        steps = frames.shape[1] - 1
        mask = self.sampling.truth_mask(x.shape[0], x.shape[1], steps, step).to(frames.device, frames.dtype)
        predictions, _ = self.rollout(frames, steps, mask)
        # patches are a permutation of pixels, so both means equal the per-pixel means of the frames
        return F.mse_loss(predictions, frames[:, 1:]) + F.l1_loss(predictions, frames[:, 1:])


def build_e3dlstm(task, hparams):
    return E3DLSTM(task, num_hidden=hparams["num_hidden"], filter_size=int(hparams["filter_size"]),
                   stride=int(hparams["stride"]), patch_size=int(hparams["patch_size"]),
                   layer_norm=bool(hparams["layer_norm"]), sampling=scheduled_sampling(hparams))
