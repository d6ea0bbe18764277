"""Pieces SV2P and SAVP share: TensorFlow's 'SAME' padding, CDNA kernels (normalisation and application),
mask compositing, the Gaussian KL terms and the reference's step schedules."""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# The reference codes lower-bound the kernel entries by this before normalising (RELU_SHIFT).
RELU_SHIFT = 1e-12


def same_padding(size: Sequence[int], kernel: int, stride: int) -> Tuple[int, int, int, int]:
    """TensorFlow's 'SAME' padding of a ``[H, W]`` input as ``F.pad`` takes it (left, right, top, bottom):
    ``ceil(size / stride)`` outputs, the odd pixel of the padding after the input, as TF puts it."""
    pads = []
    for n in (size[1], size[0]):
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's 'SAME' padding (asymmetric for an even total, as TF pads)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, same_padding(x.shape[-2:], self.kernel_size[0], self.stride[0])))


def normalize_kernels(kernels: torch.Tensor, shift: float = RELU_SHIFT) -> torch.Tensor:
    """CDNA's kernel normalisation: ``relu(k - shift) + shift``, divided by its sum over the two last
    (spatial) axes, so every kernel is non-negative and sums to 1 (a convex combination of pixels)."""
    kernels = F.relu(kernels - shift) + shift
    return kernels / kernels.sum(dim=(-2, -1), keepdim=True)


def symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Mirror padding that repeats the border pixel (TensorFlow's and numpy's 'SYMMETRIC'; torch's 'reflect'
    leaves the border pixel out)."""
    if pad == 0:
        return x
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)


def apply_cdna(image: torch.Tensor, kernels: torch.Tensor, padding: str = "zeros") -> List[torch.Tensor]:
    """Each sample's image convolved with each of its own kernels (the same kernel on every colour channel).

    ``image``: ``[B, C, H, W]``; ``kernels``: ``[B, M, k, k]`` (normalised). Returns M images ``[B, C, H, W]``.
    The batch becomes the channel axis of one grouped convolution (the references' depthwise trick);
    ``padding`` is ``zeros`` (tensor2tensor's SV2P: 'SAME') or ``symmetric`` (SAVP's ``apply_cdna_kernels``).
    """
    b, c, h, w = image.shape
    m, k = kernels.shape[1], kernels.shape[-1]
    pad = k // 2
    source = image.transpose(0, 1)  # [C, B, H, W]: colour channels are the batch, samples the channels
    source = F.pad(source, (pad, pad, pad, pad)) if padding == "zeros" else symmetric_pad(source, pad)
    out = F.conv2d(source, kernels.reshape(b * m, 1, k, k), groups=b)  # [C, B*M, H, W], index b*M + m
    out = out.view(c, b, m, h, w).permute(2, 1, 0, 3, 4)  # [M, B, C, H, W]
    return list(out.unbind(0))


def composite(images: Sequence[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
    """``sum_i masks[:, i] * images[i]``: masks ``[B, N, H, W]`` (softmax over N) broadcast over colours."""
    if masks.shape[1] != len(images):
        raise ValueError(f"{masks.shape[1]} masks for {len(images)} images")
    out = masks[:, :1] * images[0]
    for i in range(1, len(images)):
        out = out + masks[:, i:i + 1] * images[i]
    return out


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise KL( N(mean, exp(logvar)) || N(0, 1) ) = -(1 + logvar - mean^2 - exp(logvar)) / 2."""
    return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp())


def inverse_sigmoid(step: int, k: float) -> float:
    """``k / (k + exp(step / k))``: the share of ground-truth frames fed back at ``step`` (scheduled sampling
    as both references write it); 0 once ``exp`` overflows."""
    exponent = step / k
    return 0.0 if exponent > 700 else k / (k + math.exp(exponent))


def ground_truth_count(batch: int, step: int, k: float) -> int:
    """tensor2tensor's scheduled sampling 'count' mode: ``round(batch * k / (k + exp(step / k)))`` of the
    batch's samples get the ground-truth frame (chosen at random), the others their own prediction."""
    return int(round(batch * inverse_sigmoid(step, k)))


def mix_count(ground_truth: torch.Tensor, generated: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` samples (a random subset) from ``ground_truth``, the others from ``generated``."""
    if count <= 0:
        return generated
    if count >= ground_truth.shape[0]:
        return ground_truth
    chosen = torch.zeros(ground_truth.shape[0], dtype=torch.bool, device=ground_truth.device)
    chosen[torch.randperm(ground_truth.shape[0], device=ground_truth.device)[:count]] = True
    return torch.where(chosen.view(-1, *([1] * (ground_truth.dim() - 1))), ground_truth, generated)
