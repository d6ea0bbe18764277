"""CrevNet: an invertible (i-RevNet style) 3-D autoencoder maps three consecutive frames to two feature halves
without losing information; a reversible predictor of spatio-temporal ConvLSTM cells updates the halves in
turn; the inverse of the same autoencoder decodes the prediction, the next three frames.

Follows OpenSTL v0.3.0 (``crevnet_model.py``, ``crevnet_modules.py``, ``methods/crevnet.py``). The state is
sized from the input (OpenSTL fixes it to the training batch and an 8x8 grid); frames of C channels are all
predicted (OpenSTL returns channel 0 only).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

WINDOW = 3  # frames per autoencoder input (the "temporal" axis of the 3-D convolutions)
BOTTLENECK_RATIO = 2  # a block's inner width is its output width / 2 (i-RevNet's `mult`)
DROPOUT = 0.0  # i-RevNet's dropout inside each block, off in CrevNet (kept so the layers sit where the reference's do)


def space_to_depth(x, block=2):
    """``[B, C, T, H, W] -> [B, block^2 C, T, H/block, W/block]``; channel ``(i block + j) C + c`` holds pixel
    ``(i, j)`` of each ``block x block`` cell of channel c (the reference's ``psi`` ordering)."""
    b, c, t, h, w = x.shape
    x = x.view(b, c, t, h // block, block, w // block, block)
    return x.permute(0, 4, 6, 1, 2, 3, 5).reshape(b, block * block * c, t, h // block, w // block)


def depth_to_space(x, block=2):
    """The inverse of :func:`space_to_depth`."""
    b, d, t, h, w = x.shape
    c = d // (block * block)
    x = x.view(b, block, block, c, t, h, w)
    return x.permute(0, 3, 4, 5, 1, 6, 2).reshape(b, c, t, h * block, w * block)


class InvertibleBlock(nn.Module):
    """One additive coupling: ``(x1, x2) -> (x2', x1' + F(x2))``; with stride 2 both halves go to depth first.
    ``inverse`` recovers ``(x1, x2)`` exactly (up to float rounding) from the output."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, first: bool):
        super().__init__()
        half, inner = in_channels // 2, max(out_channels // BOTTLENECK_RATIO, 1)
        layers = [] if first else [nn.BatchNorm3d(half), nn.ReLU()]
        layers += [nn.Conv3d(half, inner, 3, stride=(1, stride, stride), padding=1, bias=False),
                   nn.BatchNorm3d(inner), nn.ReLU(),
                   nn.Conv3d(inner, inner, 3, padding=1, bias=False), nn.Dropout(DROPOUT),
                   nn.BatchNorm3d(inner), nn.ReLU(),
                   nn.Conv3d(inner, out_channels, 3, padding=1, bias=False)]
        self.residual = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, pair):
        x1, x2 = pair
        update = self.residual(x2)
        if self.stride == 2:
            x1, x2 = space_to_depth(x1), space_to_depth(x2)
        return x2, update + x1

    def inverse(self, pair):
        x2, y1 = pair
        if self.stride == 2:
            x2 = depth_to_space(x2)
        x1 = -self.residual(x2) + y1
        if self.stride == 2:
            x1 = depth_to_space(x1)
        return x1, x2


class InvertibleAutoencoder(nn.Module):
    """Three frames ``[B, C, 3, H, W]`` to two halves of ``32 C`` channels at ``H/8 x W/8`` (a 2x space-to-depth,
    then stages at strides 1, 2, 2), and back."""

    def __init__(self, channels: int, stage_blocks: Sequence[int]):
        super().__init__()
        in_channels = 4 * channels  # after the first space-to-depth
        widths = [in_channels // 2 * 4 ** k for k in range(len(stage_blocks))]
        self.blocks = nn.ModuleList()
        for stage, (width, count) in enumerate(zip(widths, stage_blocks)):
            for k in range(count):
                stride = 2 if stage > 0 and k == 0 else 1
                self.blocks.append(InvertibleBlock(in_channels, width, stride, first=not self.blocks))
                in_channels = 2 * width
        self.half = 4 * channels // 2

    def encode(self, frames) -> Tuple[torch.Tensor, torch.Tensor]:
        x = space_to_depth(frames)
        pair = (x[:, :self.half], x[:, self.half:])
        for block in self.blocks:
            pair = block(pair)
        return pair

    def decode(self, pair) -> torch.Tensor:
        for block in reversed(self.blocks):
            pair = block.inverse(pair)
        return depth_to_space(torch.cat(pair, 1))


class SpatioTemporalCell(nn.Module):
    """A 3-D ConvLSTM cell with a spatio-temporal memory passed between layers (the reference's STConvLSTMCell):
    the gates of the cell read the input, hidden state and cell; those of the memory read the input, the memory
    and the new cell; the output gate reads all four."""

    def __init__(self, width: int):
        super().__init__()

        def conv(n_in):
            return nn.Conv3d(n_in, width, 3, padding=1)

        self.input_gate, self.forget_gate, self.cell_candidate = conv(3 * width), conv(3 * width), conv(3 * width)
        self.memory_input_gate, self.memory_forget_gate, self.memory_candidate = (conv(3 * width) for _ in range(3))
        self.output_mix = nn.Conv3d(2 * width, width, 1)
        self.output_gate = conv(4 * width)

    @staticmethod
    def _three(convs, x):
        """Three convolutions of the same input as one (their weights stacked): the same sums, one CPU kernel."""
        out = F.conv3d(x, torch.cat([c.weight for c in convs]), torch.cat([c.bias for c in convs]), padding=1)
        return out.chunk(3, 1)

    def forward(self, x, memory, hidden, cell):
        i, f, g = self._three((self.input_gate, self.forget_gate, self.cell_candidate), torch.cat([x, hidden, cell], 1))
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
        i, f, g = self._three((self.memory_input_gate, self.memory_forget_gate, self.memory_candidate),
                              torch.cat([x, memory, cell], 1))
        memory = torch.sigmoid(f) * memory + torch.sigmoid(i) * torch.tanh(g)
        gate = torch.sigmoid(self.output_gate(torch.cat([x, hidden, cell, memory], 1)))
        hidden = gate * torch.tanh(self.output_mix(torch.cat([cell, memory], 1)))
        return hidden, cell, memory


class ReversiblePredictor(nn.Module):
    """Layers of cells, each reading one half and blending its hidden state into the other through a sigmoid
    attention map, then swapping the halves (the reference's zig_rev_predictor)."""

    def __init__(self, width: int, layers: int):
        super().__init__()
        self.cells = nn.ModuleList(SpatioTemporalCell(width) for _ in range(layers))
        self.attention = nn.ModuleList(nn.Sequential(nn.Conv3d(width, width, 1), nn.Sigmoid()) for _ in range(layers))

    def forward(self, pair, memory, states: List[Tuple[torch.Tensor, torch.Tensor]]):
        x1, x2 = pair
        states = list(states)
        for i, (cell, attention) in enumerate(zip(self.cells, self.attention)):
            hidden, c, memory = cell(x1, memory, *states[i])
            states[i] = (hidden, c)
            gate = attention(hidden)
            x2 = (1 - gate) * x2 + gate * hidden
            x1, x2 = x2, x1
        return (x1, x2), memory, states


class CrevNet(STModel):
    """CrevNet (Yu et al., ICLR 2020) over ``[B, T, C, H, W]`` frames: windows of three frames, predicted one
    frame further each step."""

    def __init__(self, task, *, predictor_rnn_layers: int, autoencoder_blocks: Sequence[int]):
        super().__init__()
        channels, height, width = task.shape
        stage_blocks = [int(n) for n in autoencoder_blocks]
        if task.t_in < WINDOW:
            raise UserError(f"crevnet starts from the last {WINDOW} observed frames; task {task.name} observes {task.t_in}")
        if len(stage_blocks) != 3 or min(stage_blocks) < 1 or int(predictor_rnn_layers) < 1:
            raise UserError("crevnet: autoencoder_blocks needs three stages of at least one block, and "
                            "predictor_rnn_layers at least one layer")
        if height % 8 or width % 8:
            raise UserError(f"crevnet halves the frame three times, so {height}x{width} must divide by 8")
        # the autoencoder loses no information: its halves have the frames' 3 C H W values / 2 at 1/8 resolution
        self.width = 32 * channels
        self.autoencoder = InvertibleAutoencoder(channels, stage_blocks)
        self.predictor = ReversiblePredictor(self.width, int(predictor_rnn_layers))

    def initial_state(self, frames):
        b, _, _, h, w = frames.shape
        zeros = frames.new_zeros(b, self.width, WINDOW, h // 8, w // 8)
        return zeros, [(zeros, zeros)] * len(self.predictor.cells)

    def step(self, window, memory, states):
        """The next window (the input window shifted by one frame), predicted from this one and the state."""
        pair, memory, states = self.predictor(self.autoencoder.encode(window), memory, states)
        return self.autoencoder.decode(pair), memory, states

    def forward(self, x, t_out):
        observed = x[:, -WINDOW:].transpose(1, 2)  # [B, C, 3, H, W], the last three frames (all the rollout sees)
        memory, states = self.initial_state(observed)
        window, predictions = observed, []
        for k in range(t_out):
            window, memory, states = self.step(window, memory, states)
            window = window.detach()
            if k == 0:  # the first two frames of the predicted window were observed: take those
                window = torch.cat([observed[:, :, 1:], window[:, :, 2:]], 2)
            elif k == 1:
                window = torch.cat([observed[:, :, 2:], window[:, :, 1:]], 2)
            predictions.append(window[:, :, 2])
        return torch.stack(predictions, 1)

    def loss(self, x, y, step):
        """Teacher forcing over the whole clip: from each window of three true frames, the window one frame on;
        the sum over steps of the mean squared error of the decoded window (OpenSTL's training loss)."""
        frames = torch.cat([x, y], 1).transpose(1, 2)  # [B, C, T, H, W]
        windows = frames.unfold(2, WINDOW, 1).permute(0, 1, 2, 5, 3, 4)  # [B, C, T - 2, 3, H, W]
        memory, states = self.initial_state(windows[:, :, 0])
        total = 0
        for i in range(1, windows.shape[2]):
            predicted, memory, states = self.step(windows[:, :, i - 1], memory, states)
            total = total + F.mse_loss(predicted, windows[:, :, i])
        return total


def build_crevnet(task, hparams):
    return CrevNet(task, predictor_rnn_layers=int(hparams["predictor_rnn_layers"]),
                   autoencoder_blocks=hparams["autoencoder_blocks"])
