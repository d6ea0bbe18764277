"""MAU (Chang et al., NeurIPS 2021): motion-aware units between a strided-convolution encoder and decoder."""
import math
from typing import List, Sequence, Tuple

import torch
from torch import nn

from stbench import UserError
from stbench_convlstm import RecurrentPredictor, hidden_sizes, scheduled_sampling

CELL_MODES = ("normal", "residual")
MODEL_MODES = ("normal", "recall")


def _conv_norm(in_channels: int, out_channels: int, kernel_size: int, grid: Tuple[int, int]) -> nn.Sequential:
    """A 'same' convolution (with bias) and a LayerNorm over (C, h, w), as every MAU gate has."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.LayerNorm([out_channels, *grid]))


class MotionAwareUnit(nn.Module):
    """One MAU cell: a temporal state T and a spatial state S, both ``channels`` wide on a ``grid``.

    The attention module scores the last ``tau`` spatial inputs of this layer against the
    current one (scaled dot products over C*h*w, softmax over the window) and uses the scores
    to average the last ``tau`` temporal states into a motion trend; a sigmoid gate of the
    current T blends T with that trend. The fusion module then mixes the blended T and the
    spatial input S through two gated updates (one for T, one for S). With ``residual`` the
    spatial input is added to the new S.
    """

    def __init__(self, channels: int, filter_size: int, grid: Tuple[int, int], tau: int, residual: bool):
        super().__init__()
        self.channels, self.tau, self.residual = channels, tau, residual
        self.scale = math.sqrt(channels * grid[0] * grid[1])
        self.conv_t = _conv_norm(channels, 3 * channels, filter_size, grid)
        self.conv_t_next = _conv_norm(channels, channels, filter_size, grid)
        self.conv_s = _conv_norm(channels, 3 * channels, filter_size, grid)
        self.conv_s_next = _conv_norm(channels, channels, filter_size, grid)

    def forward(self, t: torch.Tensor, s: torch.Tensor, t_window: torch.Tensor,
                s_window: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``t``, ``s``: ``[B, C, h, w]``; the windows: the last ``tau`` of each, ``[tau, B, C, h, w]``."""
        s_query = self.conv_s_next(s)
        t_gate = torch.sigmoid(self.conv_t_next(t))
        scores = torch.stack([(past * s_query).sum(dim=(1, 2, 3)) / self.scale for past in s_window])
        weights = torch.softmax(scores, dim=0).view(*scores.shape, 1, 1, 1)
        trend = (t_window * weights).sum(dim=0)
        t_fused = t * t_gate + (1 - t_gate) * trend
        t_gate_new, t_to_t, t_to_s = torch.split(self.conv_t(t_fused), self.channels, dim=1)
        s_gate_new, s_to_t, s_to_s = torch.split(self.conv_s(s), self.channels, dim=1)
        t_gate_new, s_gate_new = torch.sigmoid(t_gate_new), torch.sigmoid(s_gate_new)
        t_new = t_gate_new * t_to_t + (1 - t_gate_new) * s_to_t
        s_new = s_gate_new * s_to_s + (1 - s_gate_new) * t_to_s
        if self.residual:
            s_new = s_new + s
        return t_new, s_new


class MAU(RecurrentPredictor):
    """MAU (Chang et al., NeurIPS 2021): frames are encoded by a 1x1 convolution and ``log2(sr_size)``
    stride-2 3x3 convolutions, pass a stack of motion-aware units at 1/``sr_size`` of the patch grid,
    and are decoded by as many stride-2 transposed convolutions and a 1x1 read-out.

    ``model_mode='recall'`` adds each encoder feature map to the decoder output of the same
    resolution (skip connections); ``cell_mode='residual'`` makes every unit residual in S.
    Each layer keeps the last ``tau`` of its temporal states and of its spatial inputs (zeros
    before the first frame) for the attention.
    """

    def __init__(self, task, *, num_hidden, filter_size: int, patch_size: int, sr_size: int, tau: int,
                 cell_mode: str, model_mode: str, sampling):
        sizes = hidden_sizes(num_hidden)
        if len(set(sizes)) != 1:
            raise UserError(f"mau passes the spatial state S up the stack and attends over it in every layer, so all "
                            f"layers need the same width; got num_hidden={sizes}")
        if cell_mode not in CELL_MODES:
            raise UserError(f"mau: cell_mode must be one of {', '.join(CELL_MODES)}, got {cell_mode!r}")
        if model_mode not in MODEL_MODES:
            raise UserError(f"mau: model_mode must be one of {', '.join(MODEL_MODES)}, got {model_mode!r}")
        if tau < 1:
            raise UserError(f"mau: tau (the attention window) must be at least 1, got {tau}")
        if filter_size < 1 or filter_size % 2 == 0:
            raise UserError(f"mau: filter_size must be odd so the gates keep the grid size, got {filter_size}")
        super().__init__(task, patch_size=patch_size, top_channels=sizes[-1], sampling=sampling)
        if sr_size < 1 or sr_size & (sr_size - 1) or self.grid[0] % sr_size or self.grid[1] % sr_size:
            raise UserError(f"mau: sr_size must be a power of 2 that divides the patch grid {self.grid[0]}x"
                            f"{self.grid[1]} (frames {task.shape[1]}x{task.shape[2]} / patch_size {patch_size}); "
                            f"got {sr_size}. Choose another (--set sr_size=...)")
        width, levels = sizes[0], sr_size.bit_length() - 1
        self.width, self.tau, self.recall = width, tau, model_mode == "recall"
        self.state_grid = (self.grid[0] // sr_size, self.grid[1] // sr_size)
        # encoders[0] embeds the patch channels; encoders[1:] halve the grid
        self.encoders = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(self.frame_channels, width, 1), nn.LeakyReLU(0.2))]
            + [nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
               for _ in range(levels)])
        self.cells = nn.ModuleList(MotionAwareUnit(width, filter_size, self.state_grid, tau, cell_mode == "residual")
                                   for _ in sizes)
        # each decoder doubles the grid; the last one has no activation before the read-out
        self.decoders = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(width, width, 3, stride=2, padding=1, output_padding=1),
                          *([nn.LeakyReLU(0.2)] if level < levels - 1 else []))
            for level in range(levels))
        # MAU's read-out is a 1x1 convolution with a bias (the shared rollout's conv_last has none)
        self.conv_last = nn.Conv2d(width, self.frame_channels, 1)

    def initial_state(self, frame):
        zeros = frame.new_zeros(frame.shape[0], self.width, *self.state_grid)
        n = len(self.cells)
        # per layer: T, the last tau temporal states, the last tau spatial inputs
        return [zeros] * n, [(zeros,) * self.tau] * n, [(zeros,) * self.tau] * n

    def step(self, frame, state, with_aux):
        ts, t_windows, s_windows = list(state[0]), list(state[1]), list(state[2])
        features: List[torch.Tensor] = []
        net = frame
        for encoder in self.encoders:
            net = encoder(net)
            features.append(net)
        for layer, cell in enumerate(self.cells):
            ts[layer], s_new = cell(ts[layer], net, torch.stack(t_windows[layer]), torch.stack(s_windows[layer]))
            s_windows[layer] = _slide(s_windows[layer], net)
            t_windows[layer] = _slide(t_windows[layer], ts[layer])
            net = s_new
        for level, decoder in enumerate(self.decoders):
            net = decoder(net)
            if self.recall:
                net = net + features[-2 - level]
        return net, (ts, t_windows, s_windows), None


def _slide(window: Sequence[torch.Tensor], newest: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    return (*window[1:], newest)


def build_mau(task, hparams):
    return MAU(task, num_hidden=hparams["num_hidden"], filter_size=int(hparams["filter_size"]),
               patch_size=int(hparams["patch_size"]), sr_size=int(hparams["sr_size"]), tau=int(hparams["tau"]),
               cell_mode=str(hparams["cell_mode"]), model_mode=str(hparams["model_mode"]),
               sampling=scheduled_sampling(hparams))
