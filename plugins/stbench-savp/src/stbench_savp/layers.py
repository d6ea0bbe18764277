"""SAVP's building blocks as alexlee-gk/video_prediction writes them (``video_prediction/ops.py``,
``rnn_ops.py``, ``models/networks.py``): convolution fused with average pooling, bilinear up-sampling fused with
convolution, the instance-normalised convolutional LSTM, TensorFlow's LSTMCell, the spectrally normalised
video and image discriminators and the posterior encoder."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench_sv2p.ops import same_padding


def trunc_normal(weight: torch.Tensor, std: float = 0.02) -> None:
    """tf.truncated_normal_initializer(stddev=std): normal, redrawn beyond two standard deviations."""
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """layers.fused_instance_norm: statistics over (H, W) per sample and channel, scale 1 and offset 0 to start,
    epsilon 1e-6."""
    return nn.InstanceNorm2d(channels, affine=True, eps=1e-6)


class ConvPool2d(nn.Module):
    """ops.conv_pool2d: a k x k 'SAME' convolution followed by 2x2 average pooling, computed as the reference
    does, as one stride-2 convolution with the (k+1) x (k+1) kernel averaged over 2x2 windows (zero-padded)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        trunc_normal(self.weight)

    def pooled_kernel(self) -> torch.Tensor:
        return F.avg_pool2d(F.pad(self.weight, (1, 1, 1, 1)), 2, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(x.shape[-2:], self.kernel_size + 1, 2))
        return F.conv2d(x, self.pooled_kernel(), self.bias, stride=2)


def bilinear_kernel(stride: int = 2) -> torch.Tensor:
    """ops.get_bilinear_kernel: the (2s - s % 2)-wide separable tent of bilinear up-sampling by ``s``."""
    size = 2 * stride - stride % 2
    center = stride - (size % 2 == 1) - 0.5 * (size % 2 != 1)
    tent = 1 - (torch.arange(size, dtype=torch.float64) - center).abs() / stride
    return (tent[:, None] * tent[None, :]).float()


class UpsampleConv2d(nn.Module):
    """ops.upsample_conv2d: bilinear up-sampling by 2 then a 3x3 convolution, computed as the reference does, as one
    stride-2 transposed convolution whose 6x6 kernel is the 3x3 kernel fully correlated with the 4x4 bilinear tent
    (less prone to checkerboard artefacts than a learned transposed convolution)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        trunc_normal(self.weight)
        self.register_buffer("tent", bilinear_kernel(2), persistent=False)

    def upsampled_kernel(self) -> torch.Tensor:
        out_c, in_c, k, _ = self.weight.shape
        pad = k - 1  # 'FULL' correlation of the tent with the kernel
        tent = F.pad(self.tent, (pad, pad, pad, pad))[None, None]
        kernel = F.conv2d(tent, self.weight.reshape(out_c * in_c, 1, k, k))  # [1, out*in, 6, 6]
        return kernel.view(out_c, in_c, *kernel.shape[-2:]).transpose(0, 1)  # [in, out, 6, 6] for conv_transpose2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.upsampled_kernel()
        # TF's 'SAME' transposed convolution to 2H: the forward convolution's padding is (k - 2) / 2 per side
        return F.conv_transpose2d(x, kernel, self.bias, stride=2, padding=(kernel.shape[-1] - 2) // 2)


class NormConvLSTMCell(nn.Module):
    """rnn_ops.BasicConv2DLSTMCell with an instance norm (``separate_norms`` false): one bias-free 5x5 convolution
    of [input, h] to the gates i, j, f, o, normalised together; ``c' = norm(sigmoid(f + 1) c + sigmoid(i) tanh(j))``,
    ``h' = tanh(c') sigmoid(o)``."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 5):
        super().__init__()
        self.channels = channels
        self.gates = nn.Conv2d(in_channels + channels, 4 * channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.gates_norm = instance_norm(4 * channels)
        self.state_norm = instance_norm(channels)
        trunc_normal(self.gates.weight)

    def forward(self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]]):
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.channels, *x.shape[-2:])
            state = (zeros, zeros)
        c, h = state
        i, j, f, o = self.gates_norm(self.gates(torch.cat([x, h], dim=1))).chunk(4, dim=1)
        c = self.state_norm(c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j))
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, (c, h)


class LSTMCell(nn.Module):
    """tf.nn.rnn_cell.LSTMCell: one kernel over [input, h] (Glorot uniform) with one bias, gates i, j, f, o,
    forget bias 1."""

    def __init__(self, in_features: int, units: int):
        super().__init__()
        self.units = units
        self.linear = nn.Linear(in_features + units, 4 * units)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]]):
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.units)
            state = (zeros, zeros)
        c, h = state
        i, j, f, o = self.linear(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, (c, h)


class SpectralNorm(nn.Module):
    """A weight divided by its largest singular value, estimated as ops.spectral_normed_weight does: one power
    iteration per call from the stored left vector ``u`` (the weight as a [fan-in, out] matrix), with the gradient
    flowing through the iteration; ``u`` is stored back once per training step (the caller says when)."""

    def __init__(self, weight_shape: Sequence[int]):
        super().__init__()
        out = int(weight_shape[0])
        self.register_buffer("u", trunc_normal_vector(out))

    def forward(self, weight: torch.Tensor, update: bool) -> torch.Tensor:
        matrix = weight.reshape(weight.shape[0], -1)  # [out, fan-in]: the reference's W^T
        v = _l2normalize(matrix.t() @ self.u.clone())  # the stored vector may be advanced while this graph lives
        u = _l2normalize(matrix @ v)
        sigma = u @ matrix @ v
        if update:
            with torch.no_grad():
                self.u.copy_(u)
        return weight / sigma


def trunc_normal_vector(size: int) -> torch.Tensor:
    u = torch.empty(size)
    nn.init.trunc_normal_(u, std=1.0, a=-2.0, b=2.0)  # tf.truncated_normal_initializer()
    return u


def _l2normalize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return v / (v.norm() + eps)


class SNConv(nn.Module):
    """A spectrally normalised convolution (2-D or 3-D) with padding 1 on every spatial axis and a bias."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel_size: int, stride):
        super().__init__()
        self.dims, self.stride = dims, stride
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *([kernel_size] * dims)))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        trunc_normal(self.weight)
        self.norm = SpectralNorm(self.weight.shape)

    def forward(self, x: torch.Tensor, update: bool) -> torch.Tensor:
        conv = F.conv3d if self.dims == 3 else F.conv2d
        return conv(x, self.norm(self.weight, update), self.bias, stride=self.stride, padding=1)


class SNDense(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        trunc_normal(self.weight)
        self.norm = SpectralNorm(self.weight.shape)

    def forward(self, x: torch.Tensor, update: bool) -> torch.Tensor:
        return F.linear(x, self.norm(self.weight, update), self.bias)


def _sn_output(size: int, kernel: int, stride: int) -> int:
    return (size + 2 - kernel) // stride + 1


class SNDiscriminator(nn.Module):
    """networks.video_sn_discriminator (``dims`` 3, on a clip ``[B, C, T, H, W]``) or image_sn_discriminator
    (``dims`` 2, on a frame): pairs of spectrally normalised convolutions 3/1 then 4/2 (the video one keeps time
    in its first two 4-wide convolutions), widths ndf, 2, 2, 4, 4, 8, 8 x ndf, leaky ReLU 0.1, and a spectrally
    normalised dense layer to one logit. Returns the seven activations (for feature matching) and the logits."""

    def __init__(self, dims: int, channels: int, ndf: int, size: Sequence[int]):
        super().__init__()
        widths = [ndf, ndf * 2, ndf * 2, ndf * 4, ndf * 4, ndf * 8, ndf * 8]
        kernels = [3, 4, 3, 4, 3, 4, 3]
        if dims == 3:
            strides = [1, (1, 2, 2), 1, (1, 2, 2), 1, 2, 1]
        else:
            strides = [1, 2, 1, 2, 1, 2, 1]
        self.convs = nn.ModuleList()
        shape, cin = list(size), channels
        for width, kernel, stride in zip(widths, kernels, strides):
            self.convs.append(SNConv(dims, cin, width, kernel, stride))
            steps = stride if isinstance(stride, tuple) else (stride,) * dims
            shape = [_sn_output(n, kernel, s) for n, s in zip(shape, steps)]
            cin = width
        if min(shape) < 1:
            raise ValueError(f"the discriminator needs a larger input than {list(size)}")
        self.logits = SNDense(cin * math.prod(shape), 1)

    def forward(self, x: torch.Tensor, update: bool = False) -> Tuple[List[torch.Tensor], torch.Tensor]:
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x, update), 0.1)
            features.append(x)
        return features, self.logits(x.flatten(1), update)


def discriminator_input_ok(dims: int, size: Sequence[int]) -> bool:
    """Whether every layer of an SNDiscriminator keeps at least one position for an input of ``size``."""
    strides = [1, (1, 2, 2), 1, (1, 2, 2), 1, 2, 1] if dims == 3 else [1, 2, 1, 2, 1, 2, 1]
    shape = list(size)
    for kernel, stride in zip([3, 4, 3, 4, 3, 4, 3], strides):
        steps = stride if isinstance(stride, tuple) else (stride,) * dims
        shape = [_sn_output(n, kernel, s) for n, s in zip(shape, steps)]
    return min(shape) >= 1


class PosteriorEncoder(nn.Module):
    """savp_model.posterior_fn with networks.encoder: each pair of consecutive frames (on channels) through
    ``n_layers`` 4x4 stride-2 convolutions (padding 1; nef x 1, 2, 4, capped at 4; instance norm after all but the
    first; leaky ReLU 0.2), averaged over space, then two dense layers: the mean and the log-variance (clipped
    to [-10, 10]) of the latent."""

    def __init__(self, channels: int, nef: int, n_layers: int, nz: int):
        super().__init__()
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        cin = 2 * channels
        for i in range(n_layers):
            out = nef * min(2 ** i, 4)
            conv = nn.Conv2d(cin, out, 4, stride=2, padding=1)
            trunc_normal(conv.weight)
            nn.init.zeros_(conv.bias)
            self.convs.append(conv)
            self.norms.append(instance_norm(out) if i > 0 else nn.Identity())
            cin = out
        self.mean, self.logvar = nn.Linear(cin, nz), nn.Linear(cin, nz)
        for dense in (self.mean, self.logvar):
            trunc_normal(dense.weight)
            nn.init.zeros_(dense.bias)

    def forward(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``[B, T, C, H, W]`` -> mean and log-variance ``[B, T - 1, nz]`` of z_t for the pairs (t, t+1)."""
        b, t = frames.shape[:2]
        x = torch.cat([frames[:, :-1], frames[:, 1:]], dim=2).flatten(0, 1)
        for conv, norm in zip(self.convs, self.norms):
            x = F.leaky_relu(norm(conv(x)), 0.2)
        x = x.mean(dim=(-2, -1))
        return self.mean(x).view(b, t - 1, -1), self.logvar(x).clamp(-10, 10).view(b, t - 1, -1)
