"""IAM4VP's building blocks: conv encoder/decoder layers, time embedding, time-conditioned ConvNeXt blocks, head."""
import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn


def stride_pattern(n_s: int) -> List[int]:
    """Encoder strides: 1, 2, 1, 2, ... (the decoder runs them backwards)."""
    return [1 + i % 2 for i in range(n_s)]


def to_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` (4-D) channels-last: on CPU the depthwise and small-channel convolutions run several times faster."""
    return x.contiguous(memory_format=torch.channels_last)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor (eps 1e-6), one fused kernel on the channels-last view."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ConvNormAct(nn.Module):
    """3x3 conv (stride 2 to halve; conv to 4x channels + pixel shuffle to double) -> LayerNorm2d -> SiLU.

    Convolutions start from N(0, 0.02^2) with zero bias, as the reference initialises them.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        upsample = upsample and stride == 2
        self.conv = nn.Conv2d(c_in, c_out * 4 if upsample else c_out, 3, stride=1 if upsample else stride, padding=1)
        self.shuffle = nn.PixelShuffle(2) if upsample else nn.Identity()
        self.norm = LayerNorm2d(c_out)
        nn.init.trunc_normal_(self.conv.weight, std=0.02)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return F.silu(self.norm(self.shuffle(self.conv(x))))


class SpatialEncoder(nn.Module):
    """Per-frame encoder: ``n_s`` ConvNormAct layers; returns (latent, output of the first layer)."""

    def __init__(self, c_in: int, hid: int, n_s: int):
        super().__init__()
        strides = stride_pattern(n_s)
        self.layers = nn.ModuleList(ConvNormAct(c_in if i == 0 else hid, hid, s) for i, s in enumerate(strides))

    def forward(self, x):
        skip = x = self.layers[0](x)
        for layer in self.layers[1:]:
            x = layer(x)
        return x, skip


class SpatialDecoder(nn.Module):
    """Per-frame decoder: the encoder's strides backwards; the last layer takes the skip concatenated."""

    def __init__(self, hid: int, n_s: int):
        super().__init__()
        strides = stride_pattern(n_s)[::-1]
        self.layers = nn.ModuleList(ConvNormAct(2 * hid if i == n_s - 1 else hid, hid, s, upsample=True)
                                    for i, s in enumerate(strides))

    def forward(self, x, skip):
        for layer in self.layers[:-1]:
            x = layer(x)
        return self.layers[-1](torch.cat([x, skip], dim=1))


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the (scalar) time step -> Linear(d, 4d) -> GELU -> Linear(4d, d)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.expand = nn.Linear(dim, 4 * dim)
        self.project = nn.Linear(4 * dim, dim)

    def forward(self, t):
        half = self.dim // 2
        frequencies = torch.exp(torch.arange(half, device=t.device, dtype=t.dtype) * -(math.log(10000) / (half - 1)))
        angles = t[:, None] * frequencies[None, :]
        emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
        return self.project(F.gelu(self.expand(emb)))


class LargeKernelAttention(nn.Module):
    """x * (1x1 conv of (7x7 depthwise dilated by 3 of (5x5 depthwise of x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.local = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.dilated = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.pointwise = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        return x * self.pointwise(self.dilated(self.local(x)))


class TimeBlock(nn.Module):
    """A ConvNeXt block conditioned on the time embedding.

    ``mixer(x) + Linear(GELU(time))`` per channel, then LayerNorm -> Linear(d, 4d) -> GELU ->
    Linear(4d, d) over channels, scaled per channel (layer scale 1e-6) and added to the shortcut.
    The first block of the predictor (``c_in = 2 d``) mixes with a 7x7 conv in ``d`` groups of two
    channels and takes a 1x1-conv shortcut; the others mix with large-kernel attention.
    """

    def __init__(self, dim: int, time_dim: int, c_in: Optional[int] = None):
        super().__init__()
        c_in = c_in or dim
        self.time_proj = nn.Linear(time_dim, dim)
        if c_in == dim:
            self.mixer, self.shortcut = LargeKernelAttention(dim), nn.Identity()
        else:
            self.mixer = nn.Conv2d(c_in, dim, 7, padding=3, groups=dim)
            self.shortcut = nn.Conv2d(c_in, dim, 1)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.scale = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x, time_emb):
        y = self.mixer(x) + self.time_proj(F.gelu(time_emb))[:, :, None, None]
        y = self.fc2(F.gelu(self.fc1(self.norm(y.permute(0, 2, 3, 1)))))
        return self.shortcut(x) + (self.scale * y).permute(0, 3, 1, 2)


class Predictor(nn.Module):
    """``n_t`` time blocks: ``2 T * hid`` channels (observed latents, then one slot per future frame) -> ``T * hid``."""

    def __init__(self, dim: int, n_t: int, time_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList([TimeBlock(dim, time_dim, c_in=2 * dim)]
                                    + [TimeBlock(dim, time_dim) for _ in range(n_t - 1)])

    def forward(self, x, time_emb):
        for block in self.blocks:
            x = block(x, time_emb)
        return x


class Refinement(nn.Module):
    """The head's spatial refinement: x + 1x1 -> GELU -> large-kernel attention -> 1x1."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.attention = LargeKernelAttention(dim)
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        return x + self.proj_out(self.attention(F.gelu(self.proj_in(x))))
