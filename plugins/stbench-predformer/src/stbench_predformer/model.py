"""PredFormerModel: patches -> gated transformers over space and time (one of nine arrangements) -> patches."""
import math
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError, nearest

from . import ARCH_KEYS, HEAD_READS_PATCH_MAJOR, LAYER_SKIP_VARIANTS, VARIANTS, stage_names


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole sequences (rows of the first axis) with probability ``rate``.

    The rows are whatever the transformer attends over, so a temporal transformer drops single patch
    positions of single clips and a spatial one single frames, as the reference's DropPath does on
    its ``(b n)`` and ``(b t)`` batches. Kept rows are scaled by ``1 / (1 - rate)``.
    """
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class SelfAttention(nn.Module):
    """Multi-head self-attention, queries / keys / values from one bias-free projection.

    The output projection (and its dropout, ``attn_dropout``) is left out, as in the reference, when
    one head is as wide as the model (``heads == 1 and dim_head == dim``).
    """

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.proj = None if (heads == 1 and dim_head == dim) else nn.Linear(inner, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, length, _ = x.shape
        q, k, v = (t.view(rows, length, self.heads, self.dim_head).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(dim_head)) v
        out = out.transpose(1, 2).reshape(rows, length, self.heads * self.dim_head)
        return out if self.proj is None else self.drop(self.proj(out))


class SwiGLU(nn.Module):
    """``out(drop(SiLU(gate(x)) * value(x)))`` followed by dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.gate = nn.Linear(dim, hidden)
        self.value = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.out(self.drop(F.silu(self.gate(x)) * self.value(x))))


class GatedBlock(nn.Module):
    """Pre-norm residual block: ``x + attn(norm(x))``, then ``x + swiglu(norm(x))``, each with stochastic depth."""

    def __init__(self, dim: int, heads: int, dim_head: int, hidden: int, dropout: float, attn_dropout: float,
                 drop_path_rate: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dim_head, attn_dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, hidden, dropout)
        self.drop_path = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.attn_norm(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.mlp_norm(x)), self.drop_path, self.training)


class GatedTransformer(nn.Module):
    """``depth`` gated blocks and a final LayerNorm, over sequences ``[rows, length, dim]``."""

    def __init__(self, depth: int, dim: int, **block):
        super().__init__()
        self.blocks = nn.ModuleList(GatedBlock(dim, **block) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.apply(_init_reference)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def _init_reference(module: nn.Module) -> None:
    # the reference's GatedTransformer._init_weights: linear weights N(0, 0.02^2) (truncated at +-2, i.e.
    # never), zero biases, LayerNorm 1 / 0. The patch embedding and the head keep PyTorch's defaults.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def along(x: torch.Tensor, axis: str, transformer: nn.Module) -> torch.Tensor:
    """Apply ``transformer`` to tokens ``[B, T, N, D]`` along ``axis``: ``s`` (the N patches of each frame),
    ``t`` (the T frames of each patch position) or ``st`` (all T * N tokens of a clip)."""
    b, t, n, d = x.shape
    if axis == "s":
        return transformer(x.reshape(b * t, n, d)).view(b, t, n, d)
    if axis == "t":
        y = transformer(x.transpose(1, 2).reshape(b * n, t, d))
        return y.view(b, n, t, d).transpose(1, 2)
    return transformer(x.reshape(b, t * n, d)).view(b, t, n, d)


class PredFormerLayer(nn.Module):
    """Transformers applied one after the other, each along its axis (``stages``: name -> transformer, the
    name being the axis and the position: ``t0``, ``s1``, ...); with ``skip`` the layer's input is added
    to its output."""

    def __init__(self, axes: Sequence[str], names: Sequence[str], depth: int, skip: bool, **transformer):
        super().__init__()
        self.axes, self.skip = tuple(axes), skip
        self.stages = nn.ModuleDict((name, GatedTransformer(depth, **transformer)) for name in names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for axis, stage in zip(self.axes, self.stages.values()):
            y = along(y, axis, stage)
        return y + x if self.skip else y


def sinusoidal_positions(positions: int, dim: int) -> torch.Tensor:
    """``[positions, dim]``: ``sin`` (even channels) / ``cos`` (odd) of ``p / 10000^(2 floor(i/2) / dim)``.

    The angles are formed in float64 and rounded to float32 before ``sin`` / ``cos``, as the reference
    builds them from Python floats.
    """
    p = torch.arange(positions, dtype=torch.float64)[:, None]
    i = torch.arange(dim, dtype=torch.float64)[None, :]
    angles = (p / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / dim)).float()
    angles[:, 0::2] = torch.sin(angles[:, 0::2])
    angles[:, 1::2] = torch.cos(angles[:, 1::2])
    return angles


class PredFormerModel(STModel):
    """PredFormer built for one task (``T = t_in`` observed frames ``[C, H, W]``).

    Each frame is cut into ``patch_size``-square patches (``N = H W / patch_size^2``), each patch
    (``patch_size^2 C`` values) embedded linearly into ``dim`` and given a fixed sinusoidal code of
    its place among the ``T N`` tokens. The tokens ``[B, T, N, dim]`` go through the transformers of
    ``variant`` (``VARIANTS``), then a LayerNorm and a linear head give each token's patch of the
    predicted frame at the same time index: one call maps ``T`` frames to the next ``T``.

    ``forward(x, t_out)``: fewer frames are the first ``t_out`` of one call; more are predicted chunk
    by chunk, each chunk from the previous one (the reference method's ``_predict``).
    """

    def __init__(self, task, *, variant: str, patch_size: int, dim: int, heads: int, dim_head: int,
                 scale_dim: int, ndepth: int, depth: int = 1, dropout: float = 0.0, attn_dropout: float = 0.0,
                 drop_path: float = 0.0, layer_skip: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise UserError(f"predformer: unknown variant '{variant}'{nearest(str(variant), VARIANTS)}; "
                            f"choose one of {', '.join(VARIANTS)} (--set variant=...)")
        for key, value in (("patch_size", patch_size), ("dim", dim), ("heads", heads), ("dim_head", dim_head),
                           ("scale_dim", scale_dim), ("ndepth", ndepth), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"predformer: {key} must be a whole number >= 1, got {value!r} (--set {key}=...)")
        for key, value in (("dropout", dropout), ("attn_dropout", attn_dropout), ("drop_path", drop_path)):
            if not 0.0 <= float(value) < 1.0:
                raise UserError(f"predformer: {key} must be in [0, 1), got {value!r} (--set {key}=...)")
        arrangement, axes = VARIANTS[variant]
        if arrangement != "layered" and depth != 1:
            raise UserError(f"predformer: depth (blocks per transformer of a PredFormer layer) applies to the "
                            f"layered variants; {variant}'s transformers have ndepth blocks each: set depth=1 "
                            f"and ndepth=...")
        if layer_skip and variant not in LAYER_SKIP_VARIANTS:
            raise UserError(f"predformer: layer_skip (the skip connection around each PredFormer layer) exists in "
                            f"the reference's {' and '.join(LAYER_SKIP_VARIANTS)} only, not {variant} "
                            f"(--set layer_skip=false)")
        if task.shape is None:
            raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
        c, h, w = task.shape
        if h % patch_size or w % patch_size:
            raise UserError(f"predformer: patch_size {patch_size} must divide the frame size {h}x{w} of task "
                            f"{task} (--set patch_size=...)")
        self.variant, self.t_in, self.frame_shape, self.patch = variant, task.t_in, (c, h, w), patch_size
        self.grid = (h // patch_size, w // patch_size)
        tokens = self.grid[0] * self.grid[1]
        self.patch_embed = nn.Linear(patch_size * patch_size * c, dim)
        # fixed, not a parameter, and not in the state dict (the reference keeps it as a plain tensor)
        self.register_buffer("pos_embed", sinusoidal_positions(self.t_in * tokens, dim).view(1, self.t_in, tokens, dim),
                             persistent=False)
        transformer = dict(dim=dim, heads=heads, dim_head=dim_head, hidden=dim * scale_dim, dropout=float(dropout),
                           attn_dropout=float(attn_dropout), drop_path_rate=float(drop_path))
        names = stage_names(variant)
        if arrangement == "layered":
            self.layers = nn.ModuleList(PredFormerLayer(axes, names, depth, bool(layer_skip), **transformer)
                                        for _ in range(ndepth))
        else:  # one layer whose transformers are ndepth blocks deep
            self.layers = nn.ModuleList([PredFormerLayer(axes, names, ndepth, False, **transformer)])
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, c * patch_size * patch_size)
        self.patch_major_head = variant in HEAD_READS_PATCH_MAJOR

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, T, C, H, W]`` -> tokens ``[B, T, N, dim]`` (patch values ordered row, column, channel)."""
        b, t, c, h, w = x.shape
        (gh, gw), p = self.grid, self.patch
        patches = x.reshape(b, t, c, gh, p, gw, p).permute(0, 1, 3, 5, 4, 6, 2).reshape(b, t, gh * gw, p * p * c)
        return self.patch_embed(patches) + self.pos_embed

    def unembed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, T, N, dim]`` -> frames; the head's outputs are ordered channel, row, column (unlike
        the embedding's input order, as in the reference)."""
        b, t = tokens.shape[:2]
        (gh, gw), p, (c, h, w) = self.grid, self.patch, self.frame_shape
        y = self.head(self.head_norm(tokens)).view(b, t, gh, gw, c, p, p)
        return y.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, c, h, w)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One call: ``T`` frames -> the next ``T``."""
        if tuple(x.shape[1:]) != (self.t_in, *self.frame_shape):
            raise ValueError(f"this model was built for clips [B, {self.t_in}, {', '.join(map(str, self.frame_shape))}], "
                             f"got {list(x.shape)}")
        y = self.embed(x)
        for layer in self.layers:
            y = layer(y)
        if self.patch_major_head:  # the reference's FacST: tokens (clip, patch, frame) read as (clip, frame, patch)
            y = y.transpose(1, 2).reshape(y.shape)
        return self.unembed(y)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        chunks, current = [], x
        for _ in range(math.ceil(t_out / self.t_in)):
            current = self.step(current)
            chunks.append(current)
        return torch.cat(chunks, dim=1)[:, :t_out]

    def record_notes(self) -> Dict[str, str]:
        return {"variant": self.variant}


def build_predformer(task, hparams) -> PredFormerModel:
    """PredFormer for ``task`` from resolved hyper-parameters (:data:`ARCH_KEYS`)."""
    unknown = sorted(set(hparams) - set(ARCH_KEYS))
    if unknown:
        raise ValueError(f"PredFormerModel does not take {', '.join(unknown)}; known: {', '.join(ARCH_KEYS)}")
    return PredFormerModel(task, **hparams)
