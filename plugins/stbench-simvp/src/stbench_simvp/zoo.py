"""The rest of OpenSTL's MetaVP zoo: translator blocks for the SimVP framework.

Each kind is one MetaFormer-style block that :class:`~stbench_simvp.translators.MetaTranslator`
stacks (``channels -> hidden -> ... -> channels``), as OpenSTL's ``MetaBlock`` does with
``model_type``:

- ``hornet``: recursive gated convolution (g^n conv, order 4) and a channel MLP (HorNet).
- ``moganet``: multi-order gated aggregation and a channel-aggregation feed-forward (MogaNet).
- ``poolformer``: 3x3 average pooling as the token mixer, a 1x1 conv MLP (PoolFormer).
- ``swin``: window self-attention with relative position bias, shifted windows in odd blocks (Swin).
- ``van``: large-kernel attention (5x5 depthwise, 7x7 depthwise dilated 3, 1x1) times its input (VAN).
- ``vit``: global multi-head self-attention over the H'*W' positions and an MLP (ViT).
- ``convmixer``: an 11x11 depthwise conv (residual) and a 1x1 conv, each GELU + BatchNorm (ConvMixer).

The arithmetic, the parameter shapes and the initialisation follow OpenSTL (commit c74deb5)
and the timm blocks it subclasses (0.6-era ``SwinTransformerBlock`` and ViT ``Block``); where
OpenSTL departs from the original architecture (Swin without the shifted-window mask) we follow
OpenSTL, whose published figures and weights these models reproduce (README).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stbench import UserError

from .translators import (AttentionBlock, ChannelLayerNorm, Dense, DropPath, LargeKernelConv, Pointwise, TokenMLP,
                          _channel_scale, _init_conv_fan_out)

ZOO = ("hornet", "moganet", "poolformer", "swin", "van", "vit", "convmixer")


def _trunc_normal_init(*modules: nn.Module) -> None:
    """Truncated normal (std 0.02) weights and zero biases (timm's init for linear layers)."""
    for m in modules:
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _need_multiple(kind: str, dim: int, factor: int, why: str) -> None:
    if dim % factor:
        raise UserError(f"the {kind} translator needs block widths divisible by {factor} ({why}); a block has "
                        f"{dim} channels: make hid_s x input frames and hid_t multiples of {factor} (--set hid_s=..., "
                        f"--set hid_t=...)")


# --------------------------------------------------------------------------- HorNet

class GnConv(nn.Module):
    """HorNet's recursive gated convolution of order ``order``: widths dim/2^(order-1) ... dim, each
    step a 1x1 conv gated by a slice of one 7x7 depthwise conv."""

    def __init__(self, dim: int, order: int = 4, kernel_size: int = 7):
        super().__init__()
        _need_multiple("hornet", dim, 2 ** (order - 1), f"g^n conv of order {order} halves it {order - 1} times")
        self.dims = [dim // 2 ** i for i in reversed(range(order))]
        gated = sum(self.dims)
        self.proj_in = Pointwise(dim, 2 * dim)
        self.dwconv = nn.Conv2d(gated, gated, kernel_size, padding=kernel_size // 2, groups=gated)
        self.pws = nn.ModuleList(Pointwise(self.dims[i], self.dims[i + 1]) for i in range(order - 1))
        self.proj_out = Pointwise(dim, dim)

    def forward(self, x):
        first, rest = self.proj_in(x).split((self.dims[0], sum(self.dims)), dim=1)
        gates = self.dwconv(rest).split(self.dims, dim=1)
        y = first * gates[0]
        for pointwise, gate in zip(self.pws, gates[1:]):
            y = pointwise(y) * gate
        return self.proj_out(y)


class HorNetBlock(nn.Module):
    """LayerNorm -> g^n conv and LayerNorm -> 1x1 MLP, both residual with layer scale 1e-6 (no dropout)."""

    def __init__(self, dim: int, mlp_ratio: float = 8.0, drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = ChannelLayerNorm(dim, eps=1e-6)
        self.mixer = GnConv(dim)
        self.norm2 = ChannelLayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(Pointwise(dim, hidden), nn.GELU(), Pointwise(hidden, dim))
        self.scale1 = _channel_scale(1e-6, dim)
        self.scale2 = _channel_scale(1e-6, dim)
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)
        _trunc_normal_init(self.mlp[0], self.mlp[2])  # linear layers in HorNet, so timm's linear init

    def forward(self, x):
        x = x + self.drop_path(self.scale1 * self.mixer(self.norm1(x)))
        return x + self.drop_path(self.scale2 * self.mlp(self.norm2(x)))


def hornet_block(dim, *, mlp_ratio, drop_path, **_):
    return HorNetBlock(dim, mlp_ratio, drop_path)


# --------------------------------------------------------------------------- MogaNet

class MultiOrderDWConv(nn.Module):
    """MogaNet's value branch: a 5x5 depthwise conv over all channels, then on 3/8 of them a 5x5 dilated 2
    and on 1/2 of them a 7x7 dilated 3 (the first 1/8 kept), concatenated and mixed by a 1x1 conv."""

    def __init__(self, dim: int):
        super().__init__()
        _need_multiple("moganet", dim, 8, "its channels split 1:3:4")
        self.split = (dim // 8, 3 * dim // 8, dim // 2)
        _, mid, last = self.split
        self.dw0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.dw1 = nn.Conv2d(mid, mid, 5, padding=4, dilation=2, groups=mid)
        self.dw2 = nn.Conv2d(last, last, 7, padding=9, dilation=3, groups=last)
        self.pointwise = Pointwise(dim, dim)

    def forward(self, x):
        first, mid, _ = self.split
        x = self.dw0(x)
        parts = (x[:, :first], self.dw1(x[:, first:first + mid]), self.dw2(x[:, first + mid:]))
        return self.pointwise(torch.cat(parts, dim=1))


class GatedAggregation(nn.Module):
    """MogaNet's spatial mixer: 1x1 -> feature decomposition (x + sigma * (x - mean)) -> SiLU, then
    ``1x1(SiLU(gate) * SiLU(value))``, with its own shortcut."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj_in = Pointwise(dim, dim)
        self.sigma = _channel_scale(1e-5, dim)
        self.gate = Pointwise(dim, dim)
        self.value = MultiOrderDWConv(dim)
        self.proj_out = Pointwise(dim, dim)

    def forward(self, x):
        y = self.proj_in(x)
        y = F.silu(y + self.sigma * (y - y.mean(dim=(2, 3), keepdim=True)))
        return x + self.proj_out(F.silu(self.gate(y)) * F.silu(self.value(y)))


class ChannelAggregationFFN(nn.Module):
    """1x1 expand -> 3x3 depthwise -> GELU -> channel aggregation (x + sigma * (x - GELU(1x1 to one channel)))
    -> 1x1 project."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = Pointwise(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.decompose = Pointwise(hidden, 1)
        self.sigma = _channel_scale(1e-5, hidden)
        self.fc2 = Pointwise(hidden, dim)

    def forward(self, x):
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        x = x + self.sigma * (x - self.act(self.decompose(x)))
        return self.drop(self.fc2(x))


class MogaBlock(nn.Module):
    """BatchNorm -> gated aggregation and BatchNorm -> channel-aggregation FFN, residual, layer scale 1e-5."""

    def __init__(self, dim: int, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.mixer = GatedAggregation(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ChannelAggregationFFN(dim, int(dim * mlp_ratio), drop)
        self.scale1 = _channel_scale(1e-5, dim)
        self.scale2 = _channel_scale(1e-5, dim)
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)

    def forward(self, x):
        x = x + self.drop_path(self.scale1 * self.mixer(self.norm1(x)))
        return x + self.drop_path(self.scale2 * self.mlp(self.norm2(x)))


def moganet_block(dim, *, mlp_ratio, drop, drop_path, **_):
    return MogaBlock(dim, mlp_ratio, drop, drop_path)


# --------------------------------------------------------------------------- PoolFormer

class PoolFormerBlock(nn.Module):
    """GroupNorm(1) -> (3x3 average pool - identity) and GroupNorm(1) -> 1x1 MLP, residual, layer scale 1e-5."""

    def __init__(self, dim: int, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.GroupNorm(1, dim)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = nn.Sequential(Pointwise(dim, hidden), nn.GELU(), nn.Dropout(drop),
                                 Pointwise(hidden, dim), nn.Dropout(drop))
        self.scale1 = _channel_scale(1e-5, dim)
        self.scale2 = _channel_scale(1e-5, dim)
        self.drop_path = DropPath(drop_path)
        _trunc_normal_init(self.mlp[0], self.mlp[3])  # PoolFormer's MLP convs: std 0.02, not fan-out

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.drop_path(self.scale1 * (self.pool(y) - y))
        return x + self.drop_path(self.scale2 * self.mlp(self.norm2(x)))


def poolformer_block(dim, *, mlp_ratio, drop, drop_path, **_):
    return PoolFormerBlock(dim, mlp_ratio, drop, drop_path)


# --------------------------------------------------------------------------- ViT / Swin attention

class SelfAttention(nn.Module):
    """Multi-head self-attention over ``[N, L, dim]`` tokens (qkv with bias), an optional additive bias
    ``[heads, L, L]``. Heads are ``dim // heads`` wide; when that leaves channels over, the attention runs
    on ``heads * (dim // heads)`` of them and the projection maps back to ``dim`` (timm's rule)."""

    def __init__(self, dim: int, heads: int = 8, drop: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        inner = self.heads * self.head_dim
        self.qkv = Dense(dim, 3 * inner)
        self.proj = Dense(inner, dim)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, tokens, bias: Optional[torch.Tensor] = None):
        n, length, _ = tokens.shape
        q, k, v = self.qkv(tokens).reshape(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # explicit matmuls (not scaled_dot_product_attention) so the MAC counter sees both products
        attn = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5
        if bias is not None:
            attn = attn + bias
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, length, self.heads * self.head_dim)
        return self.proj_drop(self.proj(out))


class ViTBlock(nn.Module):
    """Pre-norm multi-head self-attention over all H'*W' positions, then a pre-norm MLP (no layer scale)."""

    def __init__(self, dim: int, mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0,
                 heads: int = 8):
        super().__init__()
        _need_multiple("vit", dim, heads, f"{heads} attention heads")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMLP(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.drop_path(self.attn(self.norm1(tokens)))
        tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


def vit_block(dim, *, mlp_ratio, drop, drop_path, **_):
    return ViTBlock(dim, mlp_ratio, drop, drop_path)


def swin_windows(input_resolution: Tuple[int, int], position: int) -> Tuple[int, int]:
    """``(window, shift)`` of the Swin block at ``position`` in the stack, as OpenSTL sizes them.

    The window is 7 when H' is a multiple of 7, else max(4, H' // 16), at most 8; odd blocks shift
    by half a window. A latent no larger than the window is one window, unshifted (timm's rule).
    """
    h, w = input_resolution
    window = min(8, 7 if h % 7 == 0 else max(4, h // 16))
    shift = window // 2 if position % 2 else 0
    if min(h, w) <= window:
        window, shift = min(h, w), 0
    return window, shift


def relative_position_index(window: int) -> torch.Tensor:
    """``[window^2, window^2]``: the row of the bias table each pair of positions in a window reads."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]) + (window - 1)
    return delta[0] * (2 * window - 1) + delta[1]


class WindowAttention(SelfAttention):
    """Self-attention inside each ``window x window`` window with a learned relative position bias per head."""

    def __init__(self, dim: int, window: int, heads: int = 8, drop: float = 0.0):
        super().__init__(dim, heads, drop)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)

    def forward(self, tokens, bias=None):
        length = self.relative_position_index.shape[0]
        table = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return super().forward(tokens, table.reshape(length, length, -1).permute(2, 0, 1))


class SwinBlock(nn.Module):
    """Swin Transformer block as OpenSTL runs it: pre-norm window attention (windows shifted cyclically by
    ``shift`` in odd blocks, no attention mask), then a pre-norm MLP."""

    def __init__(self, dim: int, input_resolution: Tuple[int, int], position: int, mlp_ratio: float = 8.0,
                 drop: float = 0.0, drop_path: float = 0.0, heads: int = 8):
        super().__init__()
        if dim < heads:
            raise UserError(f"the swin translator needs blocks of at least {heads} channels ({heads} heads); a "
                            f"block has {dim}: raise hid_s or hid_t (--set)")
        h, w = input_resolution
        self.window, self.shift = swin_windows(input_resolution, position)
        if h % self.window or w % self.window:
            raise UserError(f"swin's {self.window}x{self.window} windows do not tile the {h}x{w} latent; choose "
                            f"n_s (--set n_s=...) or a frame size whose latent is a multiple of {self.window}")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window, heads, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMLP(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        _init_conv_fan_out(self)
        nn.init.trunc_normal_(self.attn.relative_position_bias_table, std=0.02)

    def forward(self, x):
        b, c, h, w = x.shape
        win, shift = self.window, self.shift
        tokens = x.permute(0, 2, 3, 1)  # [B, H, W, C]
        y = self.norm1(tokens)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        windows = y.reshape(b, h // win, win, w // win, win, c).transpose(2, 3).reshape(-1, win * win, c)
        y = self.attn(windows).reshape(b, h // win, w // win, win, win, c).transpose(2, 3).reshape(b, h, w, c)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        tokens = tokens + self.drop_path(y)
        tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        return tokens.permute(0, 3, 1, 2)


def swin_block(dim, *, mlp_ratio, drop, drop_path, position, input_resolution, **_):
    if input_resolution is None:
        raise ValueError("the swin translator needs input_resolution=(H', W') (its windows are sized by it)")
    return SwinBlock(dim, tuple(int(s) for s in input_resolution), position, mlp_ratio, drop, drop_path)


# --------------------------------------------------------------------------- VAN

class LargeKernelAttention(nn.Module):
    """VAN's attention: the input times a large-kernel conv of itself (5x5 dw, 7x7 dw dilated 3, 1x1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.lk = LargeKernelConv(dim, dim)

    def forward(self, x):
        return x * self.lk(x)


def van_block(dim, *, mlp_ratio, drop, drop_path, **_):
    # the gSTA block with VAN's attention: BatchNorm, 1x1 -> GELU -> LKA -> 1x1 (own shortcut), conv MLP,
    # layer scale 1e-2, fan-out init
    return AttentionBlock(dim, LargeKernelAttention(dim), mlp_ratio, drop, drop_path)


# --------------------------------------------------------------------------- ConvMixer

class ConvMixerBlock(nn.Module):
    """``x + BN(GELU(dw conv k x k))`` then ``BN(GELU(1x1))`` (no residual); no dropout or drop-path."""

    def __init__(self, dim: int, kernel_size: int = 11):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.pwconv = Pointwise(dim, dim)
        self.norm2 = nn.BatchNorm2d(dim)
        _init_conv_fan_out(self)

    def forward(self, x):
        x = x + self.norm1(F.gelu(self.dwconv(x)))
        return self.norm2(F.gelu(self.pwconv(x)))


def convmixer_block(dim, **_):
    # OpenSTL's ConvMixer block takes neither mlp_ratio nor drop nor drop_path
    return ConvMixerBlock(dim)


ZOO_BLOCKS = {"hornet": hornet_block, "moganet": moganet_block, "poolformer": poolformer_block,
              "swin": swin_block, "van": van_block, "vit": vit_block, "convmixer": convmixer_block}
