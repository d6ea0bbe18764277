"""Cuboid attention: decomposing a (T, H, W) grid into cuboids, the self / cross attention layers on them,
the attention patterns the Earthformer configs name, and the small layers around them (FFN, patch merging,
upsampling, positional embeddings).

Tensors are channels-last, ``[B, T, H, W, C]``, as in the authors' CuboidTransformerModel; module and
parameter names follow theirs so their checkpoints load key for key.
"""
import math
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

Shape3 = Tuple[int, int, int]
PADDINGS = ("zeros", "ignore", "nearest")
ACTIVATIONS = {"leaky": lambda: nn.LeakyReLU(0.1), "gelu": nn.GELU, "relu": nn.ReLU, "elu": nn.ELU,
               "identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "softplus": nn.Softplus,
               "softrelu": nn.Softplus, "softsign": nn.Softsign}


# --- initialisation (the authors' "0" modes) -------------------------------------------------------------

def init_linear(layer: nn.Linear) -> None:
    """Kaiming normal, fan-in, linear gain (std 1/sqrt(fan_in)); zero bias."""
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="linear")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def init_conv(layer: nn.Module) -> None:
    """Kaiming normal, fan-out, leaky-ReLU(0.1) gain; zero bias."""
    nn.init.kaiming_normal_(layer.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def init_norm(layer: nn.Module) -> None:
    if isinstance(layer, nn.LayerNorm) and layer.elementwise_affine:
        nn.init.ones_(layer.weight)
        nn.init.zeros_(layer.bias)


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


# --- padding and cuboid reordering -----------------------------------------------------------------------

def pad_thw(x: torch.Tensor, pad_t: int, pad_h: int, pad_w: int, padding: str, t_left: bool = False) -> torch.Tensor:
    """Pad ``[B, T, H, W, C]`` at the end of H and W and at the end (or start) of T."""
    if pad_t == 0 and pad_h == 0 and pad_w == 0:
        return x
    _, t, h, w, _ = x.shape
    if padding == "nearest":
        size = (t + pad_t, h + pad_h, w + pad_w)
        return F.interpolate(x.permute(0, 4, 1, 2, 3), size=size).permute(0, 2, 3, 4, 1)
    t_pad = (pad_t, 0) if t_left else (0, pad_t)
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h) + t_pad)


def unpad_thw(x: torch.Tensor, pad_t: int, pad_h: int, pad_w: int, padding: str) -> torch.Tensor:
    if pad_t == 0 and pad_h == 0 and pad_w == 0:
        return x
    _, t, h, w, _ = x.shape
    if padding == "nearest":
        size = (t - pad_t, h - pad_h, w - pad_w)
        return F.interpolate(x.permute(0, 4, 1, 2, 3), size=size).permute(0, 2, 3, 4, 1)
    return x[:, :t - pad_t, :h - pad_h, :w - pad_w, :].contiguous()


def padding_to(size: int, block: int) -> int:
    return (block - size % block) % block


def to_cuboids(x: torch.Tensor, cuboid: Shape3, strategy: Sequence[str]) -> torch.Tensor:
    """``[B, T, H, W, C]`` -> ``[B, num_cuboids, cuboid_volume, C]``.

    Per axis, 'l' (local) groups ``cuboid`` neighbouring positions; 'd' (dilated) groups positions
    ``size / cuboid`` apart. The sizes must divide (callers pad first).
    """
    b, t, h, w, c = x.shape
    split, outer, inner = [], [], []
    for axis, (block, size, kind) in enumerate(zip(cuboid, (t, h, w), strategy)):
        if kind == "l":  # (blocks, within) -> the block index is the outer axis
            split += [size // block, block]
            outer.append(2 * axis + 1)
            inner.append(2 * axis + 2)
        else:  # (within, blocks): positions block apart share a cuboid
            split += [block, size // block]
            outer.append(2 * axis + 2)
            inner.append(2 * axis + 1)
    x = x.reshape(b, *split, c).permute(0, *outer, *inner, 7)
    return x.reshape(b, -1, cuboid[0] * cuboid[1] * cuboid[2], c)


def from_cuboids(x: torch.Tensor, cuboid: Shape3, strategy: Sequence[str], thw: Shape3) -> torch.Tensor:
    """The inverse of :func:`to_cuboids` for a grid of size ``thw``."""
    b, _, _, c = x.shape
    t, h, w = thw
    order = [0]
    for axis, kind in enumerate(strategy):
        order += [axis + 1, axis + 4] if kind == "l" else [axis + 4, axis + 1]
    x = x.reshape(b, t // cuboid[0], h // cuboid[1], w // cuboid[2], *cuboid, c).permute(*order, 7)
    return x.reshape(b, t, h, w, c)


def _shift_regions(size: int, block: int, shift: int) -> torch.Tensor:
    """Per position along one axis, which of the (up to) three shifted-window regions it lies in."""
    index = torch.arange(size)
    if shift == 0:
        return torch.zeros(size, dtype=torch.long)
    return (index >= size - block).long() + (index >= size - shift).long()


def _region_labels(sizes: Sequence[int], blocks: Sequence[int], shifts: Sequence[int]) -> torch.Tensor:
    """One label per grid position; two positions may attend to each other only with equal labels."""
    labels = torch.zeros(tuple(sizes), dtype=torch.long)
    for axis, (size, block, shift) in enumerate(zip(sizes, blocks, shifts)):
        view = [1] * len(sizes)
        view[axis] = size
        labels = labels * 3 + _shift_regions(size, block, shift).view(view)
    return labels


@lru_cache(maxsize=None)
def self_attention_mask(thw: Shape3, cuboid: Shape3, shift: Shape3, strategy: Tuple[str, ...], padding: str,
                        device: torch.device) -> Optional[torch.Tensor]:
    """``[num_cuboids, volume, volume]`` (True: may attend), or None where nothing is masked.

    Shifted windows only attend within their own region; with ``padding='ignore'`` padded positions
    are masked both ways.
    """
    pads = [padding_to(s, c) for s, c in zip(thw, cuboid)]
    sizes = tuple(s + p for s, p in zip(thw, pads))
    masked = any(shift) or (padding == "ignore" and any(pads))
    if not masked:
        return None
    labels = _region_labels(sizes, cuboid, shift).view(1, *sizes, 1).float()
    labels = to_cuboids(labels, cuboid, strategy)[0, :, :, 0]
    mask = labels.unsqueeze(1) == labels.unsqueeze(2)
    if padding == "ignore" and any(pads):
        data = F.pad(torch.ones(1, *thw, 1), (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        if any(shift):
            data = torch.roll(data, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        data = to_cuboids(data, cuboid, strategy)[0, :, :, 0].bool()
        mask = mask & data.unsqueeze(1) & data.unsqueeze(2)
    return mask.to(device)


@lru_cache(maxsize=None)
def cross_attention_mask(t_x: int, t_mem: int, h: int, w: int, n_temporal: int, cuboid_hw: Tuple[int, int],
                         shift_hw: Tuple[int, int], strategy: Tuple[str, ...], padding: str,
                         device: torch.device) -> Optional[torch.Tensor]:
    """``[num_cuboids, x_volume, mem_volume]`` for cuboid cross attention, or None where nothing is masked."""
    pad_tm, pad_tx = padding_to(t_mem, n_temporal), padding_to(t_x, n_temporal)
    pad_h, pad_w = padding_to(h, cuboid_hw[0]), padding_to(w, cuboid_hw[1])
    ignore = padding == "ignore"
    if not any(shift_hw) and not (ignore and (pad_tm or pad_tx or pad_h or pad_w)):
        return None
    hp, wp = h + pad_h, w + pad_w
    mem = torch.ones(1, t_mem, h, w, 1)
    x = torch.ones(1, t_x, h, w, 1)
    if ignore:  # padded positions never attend nor are attended to
        mem = F.pad(mem, (0, 0, 0, pad_w, 0, pad_h, pad_tm, 0))
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h, 0, pad_tx))
        if any(shift_hw):
            mem = torch.roll(mem, shifts=(-shift_hw[0], -shift_hw[1]), dims=(2, 3))
            x = torch.roll(x, shifts=(-shift_hw[0], -shift_hw[1]), dims=(2, 3))
    else:  # zeros / nearest padding: padded values take part like any other
        mem = torch.ones(1, t_mem + pad_tm, hp, wp, 1)
        x = torch.ones(1, t_x + pad_tx, hp, wp, 1)
    x_cuboid = ((t_x + pad_tx) // n_temporal,) + tuple(cuboid_hw)
    mem_cuboid = ((t_mem + pad_tm) // n_temporal,) + tuple(cuboid_hw)
    x = to_cuboids(x, x_cuboid, strategy)[0, :, :, 0].bool()
    mem = to_cuboids(mem, mem_cuboid, strategy)[0, :, :, 0].bool()
    n = x.shape[0]
    labels = _region_labels((n_temporal, hp, wp), (1,) + tuple(cuboid_hw), (0,) + tuple(shift_hw))
    labels = to_cuboids(labels.view(1, n_temporal, hp, wp, 1).float(), (1,) + tuple(cuboid_hw), strategy)[0, :, :, 0]
    area = cuboid_hw[0] * cuboid_hw[1]
    same = (labels.unsqueeze(1) == labels.unsqueeze(2)).view(n, 1, area, 1, area)
    mask = same & x.view(n, -1, area, 1, 1) & mem.view(n, 1, 1, -1, area)
    return mask.reshape(n, x.shape[1], mem.shape[1]).to(device)


def masked_softmax(score: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Softmax over the last axis; masked entries get weight 0 (a fully masked row is all zeros)."""
    if mask is None:
        return torch.softmax(score, dim=-1)
    fill = -1e4 if score.dtype == torch.float16 else -1e18
    return torch.softmax(score.masked_fill(~mask, fill), dim=-1) * mask


def fit_cuboid(thw: Shape3, cuboid: Shape3, shift: Shape3, strategy: Sequence[str]) -> Tuple[Shape3, Shape3]:
    """A cuboid no larger than the grid (and no shift along dilated or whole axes)."""
    cuboid, shift = list(cuboid), list(shift)
    for axis, size in enumerate(thw):
        if strategy[axis] == "d":
            shift[axis] = 0
        if size <= cuboid[axis]:
            cuboid[axis], shift[axis] = size, 0
    return tuple(cuboid), tuple(shift)


def relative_index(extent: Shape3) -> torch.Tensor:
    """Index into a relative-position table over an (t, h, w) extent: ``[volume, volume]``."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(e) for e in extent], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([e - 1 for e in extent])
    return rel[..., 0] * (2 * extent[1] - 1) * (2 * extent[2] - 1) + rel[..., 1] * (2 * extent[2] - 1) + rel[..., 2]


# --- attention patterns (the names the configs use) -------------------------------------------------------

def _self_full(shape):
    t, h, w = shape[:3]
    return [(t, h, w)], [("l", "l", "l")], [(0, 0, 0)]


def _self_axial(shape):
    t, h, w = shape[:3]
    return [(t, 1, 1), (1, h, 1), (1, 1, w)], [("l", "l", "l")] * 3, [(0, 0, 0)] * 3


def _self_divided_st(shape):
    t, h, w = shape[:3]
    return [(t, 1, 1), (1, h, w)], [("l", "l", "l")] * 2, [(0, 0, 0)] * 2


def _self_video_swin(shape, p=2, m=4):
    t, h, w = shape[:3]
    p, m = min(p, t), min(m, h, w)
    return [(p, m, m)] * 2, [("l", "l", "l")] * 2, [(0, 0, 0), (p // 2, m // 2, m // 2)]


def _self_spatial_lg(shape, m=4):
    t, h, w = shape[:3]
    if h <= m and w <= m:
        return [(t, 1, 1), (1, h, w)], [("l", "l", "l")] * 2, [(0, 0, 0)] * 2
    return [(t, 1, 1), (1, m, m), (1, m, m)], [("l", "l", "l"), ("l", "l", "l"), ("d", "d", "d")], [(0, 0, 0)] * 3


def _self_axial_space_dilate(shape, k=2):
    t, h, w = shape[:3]
    k = min(k, h, w)
    cuboids = [(t, 1, 1), (1, h // k, 1), (1, h // k, 1), (1, 1, w // k), (1, 1, w // k)]
    strategies = [("l", "l", "l"), ("d", "d", "d"), ("l", "l", "l"), ("d", "d", "d"), ("l", "l", "l")]
    return cuboids, strategies, [(0, 0, 0)] * 5


def _cross(shape, k, kind):
    k = min(k, shape[1], shape[2])
    if kind == "":
        return [(k, k)], [(0, 0)], [("l", "l", "l")], [1]
    if kind == "_lg":
        return [(k, k)] * 2, [(0, 0)] * 2, [("l", "l", "l"), ("d", "d", "d")], [1, 1]
    return [(k, k)] * 3, [(0, 0), (0, 0), (k // 2, k // 2)], [("l", "l", "l"), ("d", "d", "d"), ("l", "l", "l")], [1] * 3


SELF_PATTERNS = {"full": _self_full, "axial": _self_axial, "divided_st": _self_divided_st,
                 "video_swin": _self_video_swin, "spatial_lg_v1": _self_spatial_lg}
SELF_PATTERNS.update({f"video_swin_{p}x{m}": (lambda s, p=p, m=m: _self_video_swin(s, p, m))
                      for p in (1, 2, 4, 8, 10) for m in (1, 2, 4, 8, 16, 32)})
SELF_PATTERNS.update({f"spatial_lg_{m}": (lambda s, m=m: _self_spatial_lg(s, m)) for m in (1, 2, 4, 8, 16, 32)})
SELF_PATTERNS.update({f"axial_space_dilate_{k}": (lambda s, k=k: _self_axial_space_dilate(s, k)) for k in (2, 4, 8)})
CROSS_PATTERNS = {f"cross_{k}x{k}{kind}": (lambda s, k=k, kind=kind: _cross(s, k, kind))
                  for k in (1, 2, 4, 8) for kind in ("", "_lg", "_heter")}


# --- small layers -----------------------------------------------------------------------------------------

class PosEmbed(nn.Module):
    """Learned positional embedding added to ``[B, T, H, W, C]``: t+h+w (three tables) or t+hw (two)."""

    def __init__(self, dim: int, max_t: int, max_h: int, max_w: int, kind: str = "t+hw"):
        super().__init__()
        self.kind, self.dim, self.max_w = kind, dim, max_w
        self.T_embed = nn.Embedding(max_t, dim)
        if kind == "t+h+w":
            self.H_embed = nn.Embedding(max_h, dim)
            self.W_embed = nn.Embedding(max_w, dim)
        else:
            self.HW_embed = nn.Embedding(max_h * max_w, dim)
        for table in self.children():
            nn.init.trunc_normal_(table.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, t, h, w, _ = x.shape
        device = x.device
        out = x + self.T_embed(torch.arange(t, device=device)).reshape(t, 1, 1, self.dim)
        if self.kind == "t+h+w":
            return (out + self.H_embed(torch.arange(h, device=device)).reshape(1, h, 1, self.dim)
                    + self.W_embed(torch.arange(w, device=device)).reshape(1, 1, w, self.dim))
        spatial = torch.arange(h, device=device).unsqueeze(-1) * self.max_w + torch.arange(w, device=device)
        return out + self.HW_embed(spatial)


class PositionwiseFFN(nn.Module):
    """Pre-norm FFN with residual: x + drop(fc2(drop(act(fc1(LN(x)))))), optionally gated."""

    def __init__(self, units: int, hidden: int, dropout: float, act: str, gated: bool = False):
        super().__init__()
        self.gated = gated
        self.ffn_1 = nn.Linear(units, hidden)
        if gated:
            self.ffn_1_gate = nn.Linear(units, hidden)
        self.activation = activation(act)
        self.ffn_2 = nn.Linear(hidden, units)
        self.layer_norm = nn.LayerNorm(units)
        self.dropout_layer = nn.Dropout(dropout)
        self.activation_dropout_layer = nn.Dropout(dropout)
        for layer in (self.ffn_1, self.ffn_2) + ((self.ffn_1_gate,) if gated else ()):
            init_linear(layer)
        init_norm(self.layer_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = self.layer_norm(x)
        if self.gated:
            out = self.activation(self.ffn_1_gate(data)) * self.ffn_1(data)
        else:
            out = self.activation(self.ffn_1(data))
        out = self.dropout_layer(self.ffn_2(self.activation_dropout_layer(out)))
        return out + x


class PatchMerging3D(nn.Module):
    """Space-to-depth by ``factor`` (t, h, w), LayerNorm, then a linear map to ``out_dim`` (no bias)."""

    def __init__(self, dim: int, out_dim: int, factor: Shape3, padding: str):
        super().__init__()
        self.factor, self.padding, self.out_dim = tuple(factor), padding, out_dim
        merged = factor[0] * factor[1] * factor[2] * dim
        self.reduction = nn.Linear(merged, out_dim, bias=False)
        self.norm = nn.LayerNorm(merged)
        init_linear(self.reduction)
        init_norm(self.norm)

    def out_shape(self, shape):
        t, h, w = shape[:3]
        return tuple(math.ceil(s / f) for s, f in zip((t, h, w), self.factor)) + (self.out_dim,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = x.shape
        ft, fh, fw = self.factor
        pad_t, pad_h, pad_w = padding_to(t, ft), padding_to(h, fh), padding_to(w, fw)
        if pad_h or pad_w:  # as the reference: only a spatial remainder triggers padding (time never is merged)
            x = pad_thw(x, pad_t, pad_h, pad_w, self.padding)
            t, h, w = t + pad_t, h + pad_h, w + pad_w
        x = x.reshape(b, t // ft, ft, h // fh, fh, w // fw, fw, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
        x = x.reshape(b, t // ft, h // fh, w // fw, ft * fh * fw * c)
        return self.reduction(self.norm(x))


class Upsample3DLayer(nn.Module):
    """Nearest-neighbour resize of each frame to ``size`` (h, w), then a 3x3 convolution."""

    def __init__(self, dim: int, out_dim: int, size: Tuple[int, int], kernel: int = 3):
        super().__init__()
        self.size, self.out_dim = tuple(size), out_dim
        self.conv = nn.Conv2d(dim, out_dim, kernel, padding=kernel // 2)
        init_conv(self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = x.shape
        x = F.interpolate(x.reshape(b * t, h, w, c).permute(0, 3, 1, 2), size=self.size, mode="nearest")
        return self.conv(x).permute(0, 2, 3, 1).reshape(b, t, *self.size, self.out_dim)


# --- cuboid attention layers ------------------------------------------------------------------------------

class CuboidSelfAttentionLayer(nn.Module):
    """Self-attention inside each cuboid of one decomposition (size, shift, strategy), all cuboids in
    parallel, with a relative-position bias; optionally coupled with K global vectors (local cells attend
    to the global vectors too, and the global vectors attend to every cell)."""

    def __init__(self, dim, num_heads, cuboid_size, shift_size, strategy, padding, attn_drop, proj_drop,
                 use_global_vector=False, use_global_self_attn=False, separate_global_qkv=False,
                 global_dim_ratio=1, use_relative_pos=True, use_final_proj=True, qkv_bias=False):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.cuboid_size, self.shift_size = tuple(cuboid_size), tuple(shift_size)
        self.strategy, self.padding = tuple(strategy), padding
        self.use_global_vector, self.use_global_self_attn = use_global_vector, use_global_self_attn
        self.separate_global_qkv, self.global_dim_ratio = separate_global_qkv, global_dim_ratio
        self.use_relative_pos, self.use_final_proj = use_relative_pos, use_final_proj
        self.scale = (dim // num_heads) ** -0.5
        if use_relative_pos:
            size = (2 * self.cuboid_size[0] - 1) * (2 * self.cuboid_size[1] - 1) * (2 * self.cuboid_size[2] - 1)
            self.relative_position_bias_table = nn.Parameter(torch.zeros(size, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_index(self.cuboid_size))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        global_dim = global_dim_ratio * dim
        inits = [self.qkv]
        if use_global_vector:
            if separate_global_qkv:
                self.l2g_q_net = nn.Linear(dim, dim, bias=qkv_bias)
                self.l2g_global_kv_net = nn.Linear(global_dim, 2 * dim, bias=qkv_bias)
                self.g2l_global_q_net = nn.Linear(global_dim, dim, bias=qkv_bias)
                self.g2l_k_net = nn.Linear(dim, dim, bias=qkv_bias)
                self.g2l_v_net = nn.Linear(dim, global_dim, bias=qkv_bias)
                inits += [self.l2g_q_net, self.l2g_global_kv_net, self.g2l_global_q_net, self.g2l_k_net, self.g2l_v_net]
                if use_global_self_attn:
                    self.g2g_global_qkv_net = nn.Linear(global_dim, 3 * global_dim, bias=qkv_bias)
                    inits.append(self.g2g_global_qkv_net)
            else:
                self.global_qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
                inits.append(self.global_qkv)
            self.global_attn_drop = nn.Dropout(attn_drop)
        if use_final_proj:
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = nn.Dropout(proj_drop)
            inits.append(self.proj)
            if use_global_vector:  # the reference leaves this one at PyTorch's default initialisation
                self.global_proj = nn.Linear(global_dim, global_dim)
        self.norm = nn.LayerNorm(dim)
        if use_global_vector:
            self.global_vec_norm = nn.LayerNorm(global_dim)
        for layer in inits:
            init_linear(layer)
        init_norm(self.norm)

    def _heads(self, x, b, n, v, parts=1, head_dim=None):
        """``[B, n, v, parts*heads*hd]`` -> ``[parts, B, heads, n, v, hd]`` (parts=1: no leading axis)."""
        head_dim = head_dim or self.dim // self.num_heads
        x = x.reshape(b, n, v, parts, self.num_heads, head_dim).permute(3, 0, 4, 1, 2, 5)
        return x if parts > 1 else x[0]

    def forward(self, x, global_vectors=None):
        x = self.norm(x)
        b, t, h, w, c = x.shape
        if self.use_global_vector:
            num_global = global_vectors.shape[1]
            global_vectors = self.global_vec_norm(global_vectors)
        cuboid, shift = fit_cuboid((t, h, w), self.cuboid_size, self.shift_size, self.strategy)
        pads = tuple(padding_to(s, k) for s, k in zip((t, h, w), cuboid))
        x = pad_thw(x, *pads, self.padding)
        if any(shift):
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        cells = to_cuboids(x, cuboid, self.strategy)
        _, n, v, _ = cells.shape
        mask = self_attention_mask((t, h, w), cuboid, shift, self.strategy, self.padding, x.device)
        head_dim = c // self.num_heads
        q, k, val = self._heads(self.qkv(cells), b, n, v, parts=3)
        q = q * self.scale
        score = q @ k.transpose(-2, -1)
        if self.use_relative_pos:
            index = self.relative_position_index[:v, :v].reshape(-1)
            bias = self.relative_position_bias_table[index].reshape(v, v, -1)
            score = score + bias.permute(2, 0, 1).contiguous().unsqueeze(1)
        if self.use_global_vector:
            global_head_dim = self.global_dim_ratio * head_dim
            if self.separate_global_qkv:
                l2g_q = self._heads(self.l2g_q_net(cells), b, n, v) * self.scale
                l2g_k, l2g_v = self._heads(self.l2g_global_kv_net(global_vectors).reshape(b, 1, num_global, -1),
                                           b, 1, num_global, parts=2)
                g2l_q = self.g2l_global_q_net(global_vectors).reshape(b, num_global, self.num_heads, head_dim)
                g2l_q = g2l_q.permute(0, 2, 1, 3) * self.scale
                g2l_k = self._heads(self.g2l_k_net(cells), b, n, v)
                g2l_v = self._heads(self.g2l_v_net(cells), b, n, v, head_dim=global_head_dim)
                if self.use_global_self_attn:
                    g2g = self.g2g_global_qkv_net(global_vectors).reshape(b, 1, num_global, -1)
                    g2g_q, g2g_k, g2g_v = self._heads(g2g, b, 1, num_global, parts=3, head_dim=global_head_dim)
                    g2g_q = g2g_q.squeeze(2) * self.scale
            else:
                gq, gk, gv = self._heads(self.global_qkv(global_vectors).reshape(b, 1, num_global, -1),
                                         b, 1, num_global, parts=3)
                gq = gq.squeeze(2) * self.scale
                l2g_q, g2l_k, g2l_v = q, k, val
                g2l_q, l2g_k, l2g_v = gq, gk, gv
                g2g_q, g2g_k, g2g_v = gq, gk, gv
            # local cells attend to their cuboid and to every global vector
            score = torch.cat((score, l2g_q @ l2g_k.transpose(-2, -1)), dim=-1)
            local_mask = None if mask is None else F.pad(mask, (0, num_global), "constant", 1)
            values = torch.cat((val, l2g_v.expand(b, self.num_heads, n, num_global, head_dim)), dim=3)
            weights = self.attn_drop(masked_softmax(score, local_mask))
            cells = (weights @ values).permute(0, 2, 3, 1, 4).reshape(b, n, v, self.dim)
            # global vectors attend to every (unpadded) cell, and to each other if asked
            g_mask = None
            if self.padding == "ignore" and any(pads):
                g_mask = F.pad(torch.ones(1, t, h, w, 1, device=x.device),
                               (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
                if any(shift):
                    g_mask = torch.roll(g_mask, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
                g_mask = g_mask.reshape(-1)
            g_score = g2l_q @ g2l_k.reshape(b, self.num_heads, n * v, head_dim).transpose(-2, -1)
            g_values = g2l_v.reshape(b, self.num_heads, n * v, global_head_dim)
            if self.use_global_self_attn:
                g_score = torch.cat((g_score, g2g_q @ g2g_k.squeeze(2).transpose(-2, -1)), dim=-1)
                if g_mask is not None:
                    g_mask = F.pad(g_mask, (0, num_global), "constant", 1)
                g_values = torch.cat((g_values, g2g_v.reshape(b, self.num_heads, num_global, global_head_dim)), dim=2)
            g_weights = self.global_attn_drop(masked_softmax(g_score, None if g_mask is None else g_mask.bool()))
            new_global = (g_weights @ g_values).permute(0, 2, 1, 3).reshape(b, num_global, self.global_dim_ratio * self.dim)
        else:
            weights = self.attn_drop(masked_softmax(score, mask))
            cells = (weights @ val).permute(0, 2, 3, 1, 4).reshape(b, n, v, self.dim)
        if self.use_final_proj:
            cells = self.proj_drop(self.proj(cells))
            if self.use_global_vector:
                new_global = self.proj_drop(self.global_proj(new_global))
        x = from_cuboids(cells, cuboid, self.strategy, tuple(s + p for s, p in zip((t, h, w), pads)))
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        x = unpad_thw(x, *pads, self.padding)
        return (x, new_global) if self.use_global_vector else x


class CuboidCrossAttentionLayer(nn.Module):
    """Cross attention from decoder cells to encoder memory: both are cut into the same number of cuboids
    (``n_temporal`` along time, ``cuboid_hw`` in space) and each query cuboid attends to its memory cuboid."""

    def __init__(self, dim, num_heads, cuboid_hw, shift_hw, strategy, n_temporal, padding, attn_drop,
                 proj_drop, max_temporal_relative, cross_last_n_frames=None, use_global_vector=False,
                 separate_global_qkv=False, global_dim_ratio=1, use_relative_pos=True, qkv_bias=False):
        super().__init__()
        self.dim, self.num_heads, self.n_temporal = dim, num_heads, n_temporal
        shift_hw = list(shift_hw)
        if strategy[1] == "d":
            shift_hw[0] = 0
        if strategy[2] == "d":
            shift_hw[1] = 0
        self.cuboid_hw, self.shift_hw, self.strategy = tuple(cuboid_hw), tuple(shift_hw), tuple(strategy)
        self.padding, self.max_temporal_relative = padding, max_temporal_relative
        self.cross_last_n_frames = cross_last_n_frames
        self.use_global_vector, self.separate_global_qkv = use_global_vector, separate_global_qkv
        self.use_relative_pos = use_relative_pos
        self.scale = (dim // num_heads) ** -0.5
        if use_relative_pos:
            size = (2 * max_temporal_relative - 1) * (2 * self.cuboid_hw[0] - 1) * (2 * self.cuboid_hw[1] - 1)
            self.relative_position_bias_table = nn.Parameter(torch.zeros(size, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index",
                                 relative_index((max_temporal_relative,) + self.cuboid_hw))
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        inits = [self.q_proj, self.kv_proj, self.proj]
        if use_global_vector and separate_global_qkv:
            self.l2g_q_net = nn.Linear(dim, dim, bias=qkv_bias)
            self.l2g_global_kv_net = nn.Linear(global_dim_ratio * dim, 2 * dim, bias=qkv_bias)
            inits += [self.l2g_q_net, self.l2g_global_kv_net]
        self.norm = nn.LayerNorm(dim)
        for layer in inits:
            init_linear(layer)
        init_norm(self.norm)

    def forward(self, x, mem, mem_global_vectors=None):
        if self.cross_last_n_frames is not None:
            mem = mem[:, -int(min(self.cross_last_n_frames, mem.shape[1])):]
        x = self.norm(x)
        b, t_x, h, w, c = x.shape
        t_mem = mem.shape[1]
        nt = self.n_temporal
        pad_tm, pad_tx = padding_to(t_mem, nt), padding_to(t_x, nt)
        pad_h, pad_w = padding_to(h, self.cuboid_hw[0]), padding_to(w, self.cuboid_hw[1])
        # memory is padded in front and queries behind, so relative time offsets stay right
        mem = pad_thw(mem, pad_tm, pad_h, pad_w, self.padding, t_left=True)
        x = pad_thw(x, pad_tx, pad_h, pad_w, self.padding)
        if any(self.shift_hw):
            shifts = (-self.shift_hw[0], -self.shift_hw[1])
            x, mem = torch.roll(x, shifts=shifts, dims=(2, 3)), torch.roll(mem, shifts=shifts, dims=(2, 3))
        mem_cuboid = (mem.shape[1] // nt,) + self.cuboid_hw
        x_cuboid = (x.shape[1] // nt,) + self.cuboid_hw
        mem_cells = to_cuboids(mem, mem_cuboid, self.strategy)
        cells = to_cuboids(x, x_cuboid, self.strategy)
        _, n, xv, _ = cells.shape
        mv = mem_cells.shape[2]
        mask = cross_attention_mask(t_x, t_mem, h, w, nt, self.cuboid_hw, self.shift_hw, self.strategy,
                                    self.padding, x.device)
        head_dim = c // self.num_heads
        kv = self.kv_proj(mem_cells).reshape(b, n, mv, 2, self.num_heads, head_dim).permute(3, 0, 4, 1, 2, 5)
        k, v = kv[0], kv[1]
        q = self.q_proj(cells).reshape(b, n, xv, self.num_heads, head_dim).permute(0, 3, 1, 2, 4) * self.scale
        score = q @ k.transpose(-2, -1)
        if self.use_relative_pos:
            index = self.relative_position_index[:xv, :mv].reshape(-1)
            bias = self.relative_position_bias_table[index].reshape(xv, mv, -1)
            score = score + bias.permute(2, 0, 1).contiguous().unsqueeze(1)
        if self.use_global_vector:
            num_global = mem_global_vectors.shape[1]
            if self.separate_global_qkv:
                l2g_q = self.l2g_q_net(cells).reshape(b, n, xv, self.num_heads, head_dim).permute(0, 3, 1, 2, 4)
                l2g_q = l2g_q * self.scale
                gkv = self.l2g_global_kv_net(mem_global_vectors)
            else:
                l2g_q = q
                gkv = self.kv_proj(mem_global_vectors)
            gkv = gkv.reshape(b, 1, num_global, 2, self.num_heads, head_dim).permute(3, 0, 4, 1, 2, 5)
            score = torch.cat((score, l2g_q @ gkv[0].transpose(-2, -1)), dim=-1)
            mask = None if mask is None else F.pad(mask, (0, num_global), "constant", 1)
            v = torch.cat((v, gkv[1].expand(b, self.num_heads, n, num_global, head_dim)), dim=3)
        weights = self.attn_drop(masked_softmax(score, mask))
        cells = (weights @ v).permute(0, 2, 3, 1, 4).reshape(b, n, xv, self.dim)
        cells = self.proj_drop(self.proj(cells))
        x = from_cuboids(cells, x_cuboid, self.strategy, tuple(x.shape[1:4]))
        if any(self.shift_hw):
            x = torch.roll(x, shifts=self.shift_hw, dims=(2, 3))
        return unpad_thw(x, pad_tx, pad_h, pad_w, self.padding)


def _run(module, checkpointed, *args):
    """``module(*args)``, through activation checkpointing when asked (training only)."""
    if checkpointed:
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


class StackCuboidSelfAttentionBlock(nn.Module):
    """Several cuboid self-attention layers (one per decomposition), each followed by an FFN
    (``use_inter_ffn``) or one FFN after all of them; residual around every attention."""

    def __init__(self, dim, num_heads, cuboid_sizes, strategies, shift_sizes, padding, attn_drop, proj_drop,
                 ffn_drop, ffn_activation, gated_ffn, use_inter_ffn, use_global_vector, use_global_vector_ffn,
                 use_global_self_attn, separate_global_qkv, global_dim_ratio, checkpoint_level, use_relative_pos,
                 use_final_proj):
        super().__init__()
        count = len(cuboid_sizes)
        self.use_inter_ffn, self.use_global_vector = use_inter_ffn, use_global_vector
        self.use_global_vector_ffn = use_global_vector_ffn and use_global_vector
        self.checkpoint_level = checkpoint_level
        n_ffn = count if use_inter_ffn else 1
        self.ffn_l = nn.ModuleList([PositionwiseFFN(dim, 4 * dim, ffn_drop, ffn_activation, gated_ffn)
                                    for _ in range(n_ffn)])
        if self.use_global_vector_ffn:
            gdim = global_dim_ratio * dim
            self.global_ffn_l = nn.ModuleList([PositionwiseFFN(gdim, 4 * gdim, ffn_drop, ffn_activation, gated_ffn)
                                               for _ in range(n_ffn)])
        self.attn_l = nn.ModuleList([
            CuboidSelfAttentionLayer(dim, num_heads, size, shift, strategy, padding, attn_drop, proj_drop,
                                     use_global_vector, use_global_self_attn, separate_global_qkv,
                                     global_dim_ratio, use_relative_pos, use_final_proj)
            for size, strategy, shift in zip(cuboid_sizes, strategies, shift_sizes)])

    def _ffn(self, i, x, g):
        ckpt = self.checkpoint_level >= 1 and self.training
        x = _run(self.ffn_l[i], ckpt, x)
        if self.use_global_vector_ffn:
            g = _run(self.global_ffn_l[i], ckpt, g)
        return x, g

    def forward(self, x, global_vectors=None):
        ckpt = self.checkpoint_level >= 2 and self.training
        g = global_vectors
        for i, attn in enumerate(self.attn_l):
            if self.use_global_vector:
                dx, dg = _run(attn, ckpt, x, g)
                x, g = x + dx, g + dg
            else:
                x = x + _run(attn, ckpt, x)
            if self.use_inter_ffn:
                x, g = self._ffn(i, x, g)
        if not self.use_inter_ffn:
            x, g = self._ffn(0, x, g)
        return (x, g) if self.use_global_vector else x


class StackCuboidCrossAttentionBlock(nn.Module):
    """Several cuboid cross-attention layers with FFNs, as :class:`StackCuboidSelfAttentionBlock`."""

    def __init__(self, dim, num_heads, cuboid_hws, shift_hws, strategies, n_temporals, padding, cross_last_n_frames,
                 attn_drop, proj_drop, ffn_drop, ffn_activation, gated_ffn, use_inter_ffn, max_temporal_relative,
                 checkpoint_level, use_relative_pos, use_global_vector, separate_global_qkv, global_dim_ratio):
        super().__init__()
        self.use_inter_ffn, self.checkpoint_level = use_inter_ffn, checkpoint_level
        n_ffn = len(cuboid_hws) if use_inter_ffn else 1
        self.ffn_l = nn.ModuleList([PositionwiseFFN(dim, 4 * dim, ffn_drop, ffn_activation, gated_ffn)
                                    for _ in range(n_ffn)])
        self.attn_l = nn.ModuleList([
            CuboidCrossAttentionLayer(dim, num_heads, hw, shift, strategy, nt, padding, attn_drop, proj_drop,
                                      max_temporal_relative, cross_last_n_frames, use_global_vector,
                                      separate_global_qkv, global_dim_ratio, use_relative_pos)
            for hw, shift, strategy, nt in zip(cuboid_hws, shift_hws, strategies, n_temporals)])

    def forward(self, x, mem, mem_global_vector=None):
        ckpt_attn = self.checkpoint_level >= 2 and self.training
        ckpt_ffn = self.checkpoint_level >= 1 and self.training
        for i, attn in enumerate(self.attn_l):
            x = x + _run(attn, ckpt_attn, x, mem, mem_global_vector)
            if self.use_inter_ffn:
                x = _run(self.ffn_l[i], ckpt_ffn, x)
        if not self.use_inter_ffn:
            x = _run(self.ffn_l[0], ckpt_ffn, x)
        return x
