"""The SimVP spatial encoder and decoder: per-frame conv stacks around the translator."""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from stbench import UserError

# The layout activations run in. On CPU, PyTorch's depthwise convolutions (the translators' large
# kernels) are several times faster channels-last, forward and backward, and 1x1 convolutions take
# the faster of two paths for the machine (translators.Pointwise); benchmarks/cpu_paths.py measures
# both choices side by side.
MEMORY_FORMAT = torch.channels_last


def to_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` (4-D) in :data:`MEMORY_FORMAT` (a no-op when it already is)."""
    return x.contiguous(memory_format=MEMORY_FORMAT)


def sampling_pattern(n_s: int) -> List[bool]:
    """Which of the ``n_s`` encoder layers halve the resolution: every second one, the first never.

    For even ``n_s`` this is OpenSTL's ``[False, True] * (n_s // 2)``; an odd
    ``n_s`` gets a final full-resolution layer instead of losing one.
    """
    return [i % 2 == 1 for i in range(n_s)]


def latent_size(size: int, n_s: int) -> int:
    """Spatial size after the encoder (each stride-2 layer rounds up)."""
    for down in sampling_pattern(n_s):
        if down:
            size = (size + 1) // 2
    return size


def frame_geometry(task, n_s: int, model: str):
    """``(frame shape (C, H, W), latent resolution (H', W'))`` of ``task`` for an encoder of ``n_s`` layers.

    ``n_s // 2`` layers halve the frame; H and W must divide evenly so the decoder restores them
    (a :class:`~stbench.UserError` naming ``model`` says what to change otherwise).
    """
    if task.shape is None:
        raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
    c, h, w = task.shape
    factor = 2 ** (n_s // 2)
    if h % factor or w % factor:
        raise UserError(f"{model} with n_s={n_s} halves the frame {n_s // 2} time(s), so H and W must be "
                        f"multiples of {factor}; task {task} has {h}x{w}. Choose another n_s (--set n_s=...)")
    return (c, h, w), (latent_size(h, n_s), latent_size(w, n_s))


class ConvNormAct(nn.Module):
    """Conv (stride 2 to halve, or conv + pixel shuffle to double) -> GroupNorm(2) -> SiLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, downsample: bool = False,
                 upsample: bool = False):
        super().__init__()
        stride = 2 if downsample else 1
        padding = (kernel_size - stride + 1) // 2
        if upsample:
            self.conv = nn.Sequential(nn.Conv2d(c_in, c_out * 4, kernel_size, padding=padding), nn.PixelShuffle(2))
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding)
        self.norm = nn.GroupNorm(2, c_out)
        self.act = nn.SiLU()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        conv = self.conv
        if isinstance(conv, nn.Conv2d) and conv.in_channels == 1:
            # a 1-channel input is NCHW and channels-last at once, and the conv answers in NCHW unless
            # its weight names the layout (~2x faster than converting its full-resolution output)
            y = F.conv2d(x, to_layout(conv.weight), conv.bias, conv.stride, conv.padding)
        else:
            y = conv(x)
        y = self.norm(to_layout(y))
        if torch.is_grad_enabled():
            return self.act(y)
        return F.silu(y, inplace=True)  # inference: no fresh full-resolution buffer to allocate


class Encoder(nn.Module):
    """``[N, c_in, H, W] -> (latent [N, hid_s, H', W'], skip [N, hid_s, H, W])``.

    ``n_s`` layers; every second one halves the resolution, so ``H' = H / 2**(n_s // 2)``.
    The skip is the first layer's full-resolution output, added back before the decoder's last layer.
    """

    def __init__(self, c_in: int, hid_s: int, n_s: int, spatio_kernel: int = 3):
        super().__init__()
        if n_s < 1:
            raise ValueError(f"Encoder needs n_s >= 1, got {n_s}")
        pattern = sampling_pattern(n_s)
        self.layers = nn.ModuleList(
            ConvNormAct(c_in if i == 0 else hid_s, hid_s, spatio_kernel, downsample=down)
            for i, down in enumerate(pattern))

    def forward(self, x):
        skip = latent = self.layers[0](x)
        for layer in self.layers[1:]:
            latent = layer(latent)
        return latent, skip


class Decoder(nn.Module):
    """``(latent [N, hid_s, H', W'], skip [N, hid_s, H, W]) -> [N, c_out, H, W]``: the encoder mirrored.

    The skip is added to the input of the last layer; a 1x1 conv reads out ``c_out`` channels.
    """

    def __init__(self, hid_s: int, c_out: int, n_s: int, spatio_kernel: int = 3):
        super().__init__()
        if n_s < 1:
            raise ValueError(f"Decoder needs n_s >= 1, got {n_s}")
        pattern = list(reversed(sampling_pattern(n_s)))
        self.layers = nn.ModuleList(ConvNormAct(hid_s, hid_s, spatio_kernel, upsample=up) for up in pattern)
        self.readout = nn.Conv2d(hid_s, c_out, 1)

    def forward(self, latent, skip):
        for layer in self.layers[:-1]:
            latent = layer(latent)
        return self.readout(self.layers[-1](latent + skip))
