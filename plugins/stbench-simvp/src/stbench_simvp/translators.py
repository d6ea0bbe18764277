"""Translators: the temporal middle of SimVP-style models, ``[B, T*hid_S, H', W'] -> same shape``.

Two layouts share this module:

- ``incepu`` (SimVP v1): a UNet of Inception blocks (grouped convs of kernels 3, 5, 7, 11).
- every other kind: a plain stack of ``depth`` MetaFormer-style blocks. The first block runs
  on ``channels`` and a 1x1 conv reduces to ``hidden``; the middle blocks run on ``hidden``;
  the last runs on ``hidden`` and a 1x1 conv expands back to ``channels``. Drop-path grows
  linearly from 0.01 to ``drop_path`` over the stack.

The block kinds: ``gsta`` (SimVPv2 gated spatio-temporal attention), ``tau`` (temporal
attention unit), ``uniformer`` (conv blocks at the ends, self-attention in the middle),
``mlpmixer`` (token + channel MLPs; needs ``input_resolution``) and ``convnext``; the rest of
OpenSTL's MetaVP zoo (``hornet``, ``moganet``, ``poolformer``, ``swin``, ``van``, ``vit``,
``convmixer``) lives in :mod:`stbench_simvp.zoo`.
"""
import functools
import math
import os
import platform
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import UserError

TRANSLATORS = ("incepu", "gsta", "tau", "uniformer", "mlpmixer", "convnext",
               "hornet", "moganet", "poolformer", "swin", "van", "vit", "convmixer")  # the last seven: zoo.py


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p`` in training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if self.p <= 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f"p={self.p:.3f}"


POINTWISE_BACKENDS = ("matmul", "conv")


def _cpu_vendor() -> str:
    """The CPU's vendor id (``GenuineIntel``, ``AuthenticAMD``, ...; empty when it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def default_pointwise_backend(vendor: Optional[str] = None, capability: Optional[str] = None) -> str:
    """How :class:`Pointwise` runs on CPU unless ``STBENCH_POINTWISE`` says otherwise.

    ``matmul``: one matrix product over the channel axis (PyTorch's CPU matmul is MKL's sgemm).
    ``conv``: PyTorch's 1x1 convolution (oneDNN). MKL takes its AVX-512 code only on Intel CPUs,
    while oneDNN uses whatever the CPU has: on a non-Intel CPU with AVX-512 the convolution is the
    faster one (2.0-2.5x forward, 1.5-2x forward + backward on an AMD EPYC with AVX-512), elsewhere
    the matrix product (it measured about 1.3x faster on an earlier AMD EPYC development machine,
    whose instruction set was not recorded). ``benchmarks/cpu_paths.py --compare pointwise``
    measures both on the machine at hand.
    """
    vendor = _cpu_vendor() if vendor is None else vendor
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    if "AVX512" in capability.upper() and "intel" not in vendor.lower():
        return "conv"
    return "matmul"


@functools.lru_cache(maxsize=None)
def _this_machines_backend() -> str:
    return default_pointwise_backend()


def pointwise_backend() -> str:
    """The backend :class:`Pointwise` uses on CPU: ``STBENCH_POINTWISE`` (matmul|conv) or the default."""
    chosen = os.environ.get("STBENCH_POINTWISE", "").strip().lower()
    if not chosen:
        return _this_machines_backend()
    if chosen not in POINTWISE_BACKENDS:
        raise UserError(f"STBENCH_POINTWISE={chosen!r} is not a 1x1 convolution backend; "
                        f"set it to one of {', '.join(POINTWISE_BACKENDS)} or unset it")
    return chosen


class Pointwise(nn.Conv2d):
    """A 1x1 convolution (weights, init and result those of ``nn.Conv2d(c_in, c_out, 1)``).

    On CPU with a channels-last input, when its ``backend`` (:func:`pointwise_backend` when it
    was built) is ``matmul``, it runs as one matrix product over the channel axis; otherwise it
    is the plain convolution.
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True):
        super().__init__(c_in, c_out, 1, bias=bias)
        self.backend = pointwise_backend()

    def forward(self, x):
        if self.backend == "matmul" and x.device.type == "cpu" and x.dim() == 4 \
                and x.is_contiguous(memory_format=torch.channels_last):
            return F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias).permute(0, 3, 1, 2)
        return super().forward(x)


class Dense(nn.Linear):
    """``nn.Linear`` over the last axis (weights, init and result the same).

    On CPU, when its ``backend`` (:func:`pointwise_backend` when it was built) is ``conv``, the
    rows run through oneDNN as a 1x1 convolution over a ``[1, C, rows, 1]`` channels-last view
    (no copy), for the reason :func:`default_pointwise_backend` gives.
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True):
        super().__init__(c_in, c_out, bias=bias)
        self.backend = pointwise_backend()

    def forward(self, x):
        if self.backend == "conv" and x.device.type == "cpu" and x.dim() >= 2:
            c = x.shape[-1]
            rows = x.reshape(1, -1, 1, c).permute(0, 3, 1, 2)  # [1, C, rows, 1], channels-last
            y = F.conv2d(rows, self.weight[:, :, None, None], self.bias)
            return y.permute(0, 2, 3, 1).reshape(x.shape[:-1] + (self.out_features,))
        return super().forward(x)


def _init_conv_fan_out(module: nn.Module) -> None:
    """He-normal on fan-out for convs, truncated normal for linears, unit norms (the MetaFormer init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _default_init(module: nn.Module) -> None:
    """PyTorch's own init for every conv and linear layer in ``module`` (undoing :func:`_init_conv_fan_out`)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()


def _channel_scale(value: float, dim: int) -> nn.Parameter:
    return nn.Parameter(torch.full((1, dim, 1, 1), float(value)))


# --------------------------------------------------------------------------- IncepU (SimVP v1)

class InceptionBlock(nn.Module):
    """1x1 to ``c_hid``, then the sum of grouped convs (kernels 3, 5, 7, 11) each with GroupNorm + LeakyReLU."""

    def __init__(self, c_in: int, c_hid: int, c_out: int, kernels: Sequence[int] = (3, 5, 7, 11), groups: int = 8):
        super().__init__()
        self.reduce = Pointwise(c_in, c_hid)
        groups = groups if c_hid % groups == 0 and c_out % groups == 0 else 1
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_hid, c_out, k, padding=k // 2, groups=groups),
                          nn.GroupNorm(groups, c_out), nn.LeakyReLU(0.2))
            for k in kernels)

    def forward(self, x):
        x = self.reduce(x)
        return sum(branch(x) for branch in self.branches)


class IncepUTranslator(nn.Module):
    """SimVP v1's translator: ``depth`` Inception blocks down, ``depth`` up, UNet skips between them."""

    def __init__(self, channels: int, hidden: int, depth: int):
        super().__init__()
        if depth < 2:
            raise ValueError(f"the incepu translator needs depth >= 2, got {depth}")
        half = hidden // 2
        self.down = nn.ModuleList(
            InceptionBlock(channels if i == 0 else hidden, half, hidden) for i in range(depth))
        self.up = nn.ModuleList(
            InceptionBlock(hidden if i == 0 else 2 * hidden, half, channels if i == depth - 1 else hidden)
            for i in range(depth))

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
        x = self.up[0](x)
        for block in self.up[1:]:
            x = block(torch.cat([x, skips.pop()], dim=1))
        return x


# --------------------------------------------------------------------------- gSTA / TAU

class ConvFeedForward(nn.Module):
    """1x1 expand -> 3x3 depthwise -> GELU -> 1x1 project (the MixMlp of VAN / SimVPv2)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = Pointwise(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = Pointwise(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class LargeKernelConv(nn.Module):
    """A 21x21 receptive field cheaply: 5x5 depthwise, then 7x7 depthwise dilated by 3, then 1x1 (to ``c_out``)."""

    def __init__(self, dim: int, c_out: int, dilation: int = 3, kernel_size: int = 21):
        super().__init__()
        local_k = 2 * dilation - 1
        dilated_k = kernel_size // dilation + ((kernel_size // dilation) % 2 - 1)
        self.local = nn.Conv2d(dim, dim, local_k, padding=(local_k - 1) // 2, groups=dim)
        self.dilated = nn.Conv2d(dim, dim, dilated_k, padding=dilation * (dilated_k - 1) // 2, groups=dim,
                                 dilation=dilation)
        self.pointwise = Pointwise(dim, c_out)

    def forward(self, x):
        return self.pointwise(self.dilated(self.local(x)))


class GatedSpatialAttention(nn.Module):
    """gSTA's attention: large-kernel conv to 2*dim channels, split, ``sigmoid(gate) * value``."""

    def __init__(self, dim: int):
        super().__init__()
        self.lk = LargeKernelConv(dim, 2 * dim)

    def forward(self, x):
        value, gate = self.lk(x).chunk(2, dim=1)
        return torch.sigmoid(gate) * value


class TemporalAttention(nn.Module):
    """TAU's attention: (statical) large-kernel conv times (dynamical) squeeze-excitation, gating the input.

    The squeeze-excitation bottleneck has ``dim // max(dim // 16, 4)`` units (TAU's published sizing).
    """

    def __init__(self, dim: int, reduction: int = 16):
        super().__init__()
        self.lk = LargeKernelConv(dim, dim)
        squeeze = dim // max(dim // reduction, 4)
        self.excite = nn.Sequential(nn.Linear(dim, squeeze, bias=False), nn.ReLU(),
                                    nn.Linear(squeeze, dim, bias=False), nn.Sigmoid())

    def forward(self, x):
        weights = self.excite(x.mean(dim=(2, 3)))[:, :, None, None]
        return weights * self.lk(x) * x


class AttentionMixer(nn.Module):
    """1x1 -> GELU -> attention -> 1x1, with its own shortcut (the VAN / gSTA / TAU token mixer)."""

    def __init__(self, dim: int, attention: nn.Module):
        super().__init__()
        self.proj_in = Pointwise(dim, dim)
        self.act = nn.GELU()
        self.attention = attention
        self.proj_out = Pointwise(dim, dim)

    def forward(self, x):
        return x + self.proj_out(self.attention(self.act(self.proj_in(x))))


class AttentionBlock(nn.Module):
    """BatchNorm -> mixer and BatchNorm -> conv feed-forward, both residual with layer scale 0.01."""

    def __init__(self, dim: int, attention: nn.Module, mlp_ratio: float = 8.0, drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.mixer = AttentionMixer(dim, attention)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvFeedForward(dim, int(dim * mlp_ratio), drop)
        self.scale1 = _channel_scale(1e-2, dim)
        self.scale2 = _channel_scale(1e-2, dim)
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)

    def forward(self, x):
        x = x + self.drop_path(self.scale1 * self.mixer(self.norm1(x)))
        return x + self.drop_path(self.scale2 * self.mlp(self.norm2(x)))


def gsta_block(dim, *, mlp_ratio, drop, drop_path, **_):
    return AttentionBlock(dim, GatedSpatialAttention(dim), mlp_ratio, drop, drop_path)


def tau_block(dim, *, mlp_ratio, drop, drop_path, **_):
    block = AttentionBlock(dim, TemporalAttention(dim), mlp_ratio, drop, drop_path)
    # OpenSTL's TAU sub-block swaps its temporal attention in after the gSTA block's init ran, so
    # that attention's convs and linears keep PyTorch's default init; training from scratch as
    # OpenSTL does needs the same starting point.
    _default_init(block.mixer)
    return block


# --------------------------------------------------------------------------- Uniformer

class UniformerConvBlock(nn.Module):
    """Uniformer's local block: depthwise position conv; BN -> 1x1 -> 5x5 depthwise -> 1x1; BN -> 1x1 MLP."""

    def __init__(self, dim: int, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.mix = nn.Sequential(Pointwise(dim, dim), nn.Conv2d(dim, dim, 5, padding=2, groups=dim),
                                 Pointwise(dim, dim))
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = nn.Sequential(Pointwise(dim, hidden), nn.GELU(), nn.Dropout(drop),
                                 Pointwise(hidden, dim), nn.Dropout(drop))
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)

    def forward(self, x):
        x = x + self.pos(x)
        x = x + self.drop_path(self.mix(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TokenMLP(nn.Sequential):
    """Linear -> GELU -> Linear over the last axis, with dropout."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__(Dense(dim, hidden), nn.GELU(), nn.Dropout(drop), Dense(hidden, dim), nn.Dropout(drop))


class UniformerAttentionBlock(nn.Module):
    """Uniformer's global block: depthwise position conv, then pre-norm multi-head self-attention over
    the H'*W' positions and an MLP, both with layer scale 1e-6."""

    def __init__(self, dim: int, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0,
                 heads: int = 8):
        super().__init__()
        if dim % heads:
            raise ValueError(f"uniformer attention needs channels divisible by {heads} heads, got {dim}")
        self.heads = heads
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = Dense(dim, 3 * dim)
        self.proj = Dense(dim, dim)
        self.proj_drop = nn.Dropout(drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMLP(dim, int(dim * mlp_ratio), drop)
        self.scale1 = nn.Parameter(torch.full((dim,), 1e-6))
        self.scale2 = nn.Parameter(torch.full((dim,), 1e-6))
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)
        # OpenSTL's (and Uniformer's) attention block initialises only its linears and norms: the
        # position conv keeps PyTorch's default init
        self.pos.reset_parameters()

    def attend(self, tokens):
        b, n, c = tokens.shape
        q, k, v = self.qkv(tokens).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # explicit matmuls (not scaled_dot_product_attention) so the MAC counter sees both products
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))

    def forward(self, x):
        x = x + self.pos(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.drop_path(self.scale1 * self.attend(self.norm1(tokens)))
        tokens = tokens + self.drop_path(self.scale2 * self.mlp(self.norm2(tokens)))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


def uniformer_block(dim, *, mlp_ratio, drop, drop_path, position, resizes, **_):
    # attention only where the block keeps the width and is not the first: conv blocks at both ends
    if position > 0 and not resizes:
        return UniformerAttentionBlock(dim, mlp_ratio, drop, drop_path)
    return UniformerConvBlock(dim, mlp_ratio, drop, drop_path)


# --------------------------------------------------------------------------- MLP-Mixer

class MixerBlock(nn.Module):
    """MLP-Mixer: a token MLP across the H'*W' positions (hidden dim/2), then a channel MLP (hidden dim*mlp_ratio)."""

    def __init__(self, dim: int, positions: int, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.positions = positions
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.token_mlp = TokenMLP(positions, int(0.5 * dim), drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.channel_mlp = TokenMLP(dim, int(mlp_ratio * dim), drop)
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)

    def forward(self, x):
        b, c, h, w = x.shape
        if h * w != self.positions:
            raise ValueError(f"this mlpmixer translator was built for {self.positions} positions, got {h}x{w}")
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.drop_path(self.token_mlp(self.norm1(tokens).transpose(1, 2)).transpose(1, 2))
        tokens = tokens + self.drop_path(self.channel_mlp(self.norm2(tokens)))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


def mlpmixer_block(dim, *, mlp_ratio, drop, drop_path, input_resolution, **_):
    if input_resolution is None:
        raise ValueError("the mlpmixer translator needs input_resolution=(H', W') (its token MLP is sized by H'*W')")
    h, w = input_resolution
    return MixerBlock(dim, int(h) * int(w), mlp_ratio, drop, drop_path)


# --------------------------------------------------------------------------- ConvNeXt

class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``[B, C, H, W]`` tensor."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt: 7x7 depthwise -> LayerNorm -> 1x1 expand -> GELU -> 1x1 project, residual with layer scale 1e-6."""

    def __init__(self, dim: int, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = ChannelLayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(Pointwise(dim, hidden), nn.GELU(), nn.Dropout(drop),
                                 Pointwise(hidden, dim), nn.Dropout(drop))
        self.scale = _channel_scale(1e-6, dim)
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)

    def forward(self, x):
        return x + self.drop_path(self.scale * self.mlp(self.norm(self.dwconv(x))))


def convnext_block(dim, *, mlp_ratio, drop, drop_path, **_):
    return ConvNeXtBlock(dim, mlp_ratio, drop, drop_path)


# --------------------------------------------------------------------------- the MetaFormer stack

BLOCKS: Dict[str, Callable[..., nn.Module]] = {
    "gsta": gsta_block, "tau": tau_block, "uniformer": uniformer_block,
    "mlpmixer": mlpmixer_block, "convnext": convnext_block,
}


def block_factory(kind: str) -> Callable[..., nn.Module]:
    """The function that builds one block of ``kind`` (a MetaFormer kind of :data:`TRANSLATORS`)."""
    from .zoo import ZOO_BLOCKS  # the zoo's blocks build on the layers of this module

    return {**BLOCKS, **ZOO_BLOCKS}[kind]


class StackLayer(nn.Module):
    """One block on ``c_in`` channels, then a 1x1 conv to ``c_out`` where the widths differ."""

    def __init__(self, block: nn.Module, c_in: int, c_out: int):
        super().__init__()
        self.block = block
        self.resize = Pointwise(c_in, c_out) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return self.resize(self.block(x))


class MetaTranslator(nn.Module):
    """``depth`` blocks of one kind: channels -> hidden, hidden -> hidden (x depth-2), hidden -> channels."""

    def __init__(self, kind: str, channels: int, hidden: int, depth: int, *, mlp_ratio: float = 8.0,
                 drop: float = 0.0, drop_path: float = 0.1,
                 input_resolution: Optional[Tuple[int, int]] = None):
        super().__init__()
        if depth < 2:
            raise ValueError(f"the {kind} translator needs depth >= 2, got {depth}")
        make = block_factory(kind)
        # plain floats, not torch.linspace: models are also built on the meta device for counting
        rates = [1e-2 + (drop_path - 1e-2) * i / (depth - 1) for i in range(depth)]
        layers = []
        for i in range(depth):
            c_in = channels if i == 0 else hidden
            c_out = channels if i == depth - 1 else hidden
            block = make(c_in, mlp_ratio=mlp_ratio, drop=drop, drop_path=rates[i], position=i,
                         resizes=c_in != c_out, input_resolution=input_resolution)
            layers.append(StackLayer(block, c_in, c_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def build_translator(kind: str, channels: int, hidden: int, depth: int, *, mlp_ratio: float = 8.0,
                     drop: float = 0.0, drop_path: float = 0.1,
                     input_resolution: Optional[Tuple[int, int]] = None) -> nn.Module:
    """A translator mapping ``[B, channels, H', W']`` to the same shape.

    ``kind`` is one of :data:`TRANSLATORS`; ``channels`` is ``T * hid_S`` (frames folded into
    channels), ``hidden`` is ``hid_T`` and ``depth`` is ``N_T``. ``incepu`` ignores
    ``mlp_ratio``, ``drop`` and ``drop_path``; ``mlpmixer`` and ``swin`` need
    ``input_resolution=(H', W')``; ``convmixer`` ignores ``mlp_ratio``, ``drop`` and ``drop_path``,
    ``hornet`` ignores ``drop``.
    """
    kind = str(kind).lower()
    if kind == "incepu":
        return IncepUTranslator(channels, hidden, depth)
    if kind not in TRANSLATORS:
        raise ValueError(f"unknown translator '{kind}'; choose one of {', '.join(TRANSLATORS)}")
    return MetaTranslator(kind, channels, hidden, depth, mlp_ratio=mlp_ratio, drop=drop, drop_path=drop_path,
                          input_resolution=input_resolution)
