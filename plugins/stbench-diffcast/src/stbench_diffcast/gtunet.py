"""DiffCast's denoiser: a global spatio-temporal context encoder over the whole sequence (observed frames and the
backbone's prediction) and the Global Temporal UNet (GTUNet) that predicts the noise of one residual segment.

Frames of a segment run through 2D convolutions side by side (as a batch); temporal self-attention mixes them
at every resolution, so a segment may hold any number of frames. The context is the final state of one ConvGRU
per resolution run over the whole sequence; it enters every residual block at its resolution.
"""
import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal features ``[N, dim]`` of positions or levels ``values`` ([N])."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=values.device, dtype=torch.float32) / max(half, 1))
    args = values.float()[:, None] * freqs[None]
    out = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(out, (0, dim - 2 * half)) if dim > 2 * half else out


def groups_for(channels: int, wanted: int = 8) -> int:
    return math.gcd(channels, wanted)


class ResBlock(nn.Module):
    """Pre-activation residual block on frames: GroupNorm-SiLU-conv, the global context added (1x1 projection),
    GroupNorm scaled and shifted by the level / segment embedding, SiLU, dropout, conv; 1x1 skip when widths differ."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, ctx_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups_for(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.context = nn.Conv2d(ctx_dim, c_out, 1)
        self.embed = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups_for(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor, frames: int) -> torch.Tensor:
        # x [B*L, C, H, W]; emb [B*L, E]; ctx [B, Cc, H, W], one per clip, shared by its L frames
        h = self.conv1(F.silu(self.norm1(x)))
        c = self.context(ctx)
        h = (h.unflatten(0, (-1, frames)) + c[:, None]).flatten(0, 1)
        scale, shift = self.embed(F.silu(emb)).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over ``[N, heads, tokens, d]`` (explicit matmuls, so FLOPs are counted)."""
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


class TemporalAttention(nn.Module):
    """Multi-head self-attention across the frames of a segment, at every pixel; frame positions (lead times)
    enter as sinusoidal features added to the normalised input."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups_for(channels), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.norm(x).unflatten(0, (-1, frames))  # [B, L, C, H, W]
        y = y + sinusoidal(positions, c).to(y.dtype)[None, :, :, None, None]
        tokens = y.permute(0, 3, 4, 1, 2).reshape(-1, frames, c)  # [B*H*W, L, C]
        q, k, v = self.qkv(tokens).reshape(-1, frames, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v).transpose(1, 2).reshape(-1, frames, c)
        out = self.proj(out).reshape(-1, h, w, frames, c).permute(0, 3, 4, 1, 2).reshape(n, c, h, w)
        return x + out


class SpatialAttention(nn.Module):
    """Multi-head self-attention over the pixels of each frame (the UNet's middle, lowest resolution)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups_for(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).permute(1, 0, 2, 4, 3)
        out = attention(q, k, v).permute(0, 1, 3, 2).reshape(n, c, h, w)
        return x + self.proj(out)


class ConvGRUCell(nn.Module):
    """A convolutional GRU cell (3x3 gates): z, r = sigmoid(conv([x, h])); h~ = tanh(conv([x, r*h]));
    h' = (1 - z) h + z h~."""

    def __init__(self, channels: int):
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.candidate = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return (1 - z) * h + z * candidate


class ContextEncoder(nn.Module):
    """The global spatio-temporal context of a clip: a per-frame convolutional pyramid (one level per UNet
    resolution) over the observed frames followed by the backbone's prediction, and at each level a ConvGRU run
    over that whole sequence; its final states (one per level) condition every denoising step."""

    def __init__(self, channels: int, widths: Sequence[int]):
        super().__init__()
        stages = []
        for level, width in enumerate(widths):
            c_in = channels if level == 0 else widths[level - 1]
            stride = 1 if level == 0 else 2
            stages.append(nn.Sequential(nn.Conv2d(c_in, width, 3, stride=stride, padding=1),
                                        nn.GroupNorm(groups_for(width), width), nn.SiLU()))
        self.stages = nn.ModuleList(stages)
        self.cells = nn.ModuleList(ConvGRUCell(width) for width in widths)

    def forward(self, sequence: torch.Tensor) -> List[torch.Tensor]:
        b, t = sequence.shape[:2]
        features = sequence.flatten(0, 1)
        states = []
        for stage, cell in zip(self.stages, self.cells):
            features = stage(features)
            frames = features.unflatten(0, (b, t))
            h = torch.zeros_like(frames[:, 0])
            for step in range(t):
                h = cell(frames[:, step], h)
            states.append(h)
        return states


class GTUNet(nn.Module):
    """The noise predictor eps(r_t, t | mu, local frames, context, segment) for one segment of residual frames.

    Input per frame: the noisy residual (C), the backbone's prediction of that frame (C) and the last
    ``local_frames`` frames before the segment (local_frames * C, observed or already predicted), stacked on
    channels. The context has ``context_dim * dim_mults[k]`` channels at resolution k (``context_dim``: dim). Embedding: sinusoidal features of the noise level -> MLP, plus a projection of the segment index's
    sinusoidal features. Levels: ``num_res_blocks`` residual blocks and a temporal attention per resolution
    (``dim * dim_mults[k]`` channels), stride-2 convolutions down, a conv then nearest up-sampling up, one skip
    per resolution; middle: block, spatial attention (``mid_attention``), temporal attention, block.
    """

    def __init__(self, channels: int, local_frames: int, dim: int, dim_mults: Sequence[int], num_res_blocks: int,
                 heads: int, mid_attention: bool = True, dropout: float = 0.0, context_dim: Optional[int] = None):
        super().__init__()
        self.dim = dim
        widths = [dim * m for m in dim_mults]
        contexts = [(context_dim or dim) * m for m in dim_mults]
        self.widths = widths
        emb_dim = 4 * dim
        self.level_mlp = nn.Sequential(nn.Linear(dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.segment_proj = nn.Linear(dim, emb_dim)
        self.stem = nn.Conv2d(channels * (2 + local_frames), widths[0], 3, padding=1)
        self.down_blocks, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = widths[0]
        for level, width in enumerate(widths):
            self.down_blocks.append(nn.ModuleList(
                ResBlock(c if i == 0 else width, width, emb_dim, contexts[level], dropout) for i in range(num_res_blocks)))
            self.down_attn.append(TemporalAttention(width, heads))
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
            c = width
        self.mid1 = ResBlock(c, c, emb_dim, contexts[-1], dropout)
        self.mid_spatial = SpatialAttention(c, heads) if mid_attention else None
        self.mid_temporal = TemporalAttention(c, heads)
        self.mid2 = ResBlock(c, c, emb_dim, contexts[-1], dropout)
        self.up_blocks, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(widths))):
            width = widths[level]
            self.up_blocks.append(nn.ModuleList(
                ResBlock(c + width if i == 0 else width, width, emb_dim, contexts[level], dropout)
                for i in range(num_res_blocks)))
            self.up_attn.append(TemporalAttention(width, heads))
            if level > 0:
                self.upsample.append(nn.Conv2d(width, width, 3, padding=1))
            c = width
        self.out_norm = nn.GroupNorm(groups_for(c), c)
        self.out = nn.Conv2d(c, channels, 3, padding=1)

    @property
    def factor(self) -> int:
        """Frame sides must be multiples of this (the model pads to it)."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, noisy: torch.Tensor, level: torch.Tensor, mu: torch.Tensor, local: torch.Tensor,
                context: Sequence[torch.Tensor], segment: int, positions: torch.Tensor) -> torch.Tensor:
        """``noisy``, ``mu`` [B, L, C, H, W]; ``local`` [B, local_frames, C, H, W]; ``level`` [B] (0-based);
        ``context`` one [B, width_k, H_k, W_k] per resolution; ``positions`` [L] lead times of the frames.
        Returns the predicted noise [B, L, C, H, W]."""
        b, frames = noisy.shape[:2]
        local_stack = local.flatten(1, 2)[:, None].expand(-1, frames, -1, -1, -1)
        x = torch.cat([noisy, mu, local_stack], dim=2).flatten(0, 1)
        segment_index = torch.full((b,), float(segment), device=noisy.device)
        emb = self.level_mlp(sinusoidal(level, self.dim)) + self.segment_proj(sinusoidal(segment_index, self.dim))
        emb = emb.repeat_interleave(frames, dim=0)
        h = self.stem(x)
        skips = []
        for level_index, (blocks, attn) in enumerate(zip(self.down_blocks, self.down_attn)):
            for block in blocks:
                h = block(h, emb, context[level_index], frames)
            h = attn(h, positions, frames)
            skips.append(h)
            if level_index < len(self.downsample):
                h = self.downsample[level_index](h)
        h = self.mid1(h, emb, context[-1], frames)
        if self.mid_spatial is not None:
            h = self.mid_spatial(h)
        h = self.mid_temporal(h, positions, frames)
        h = self.mid2(h, emb, context[-1], frames)
        for step, (blocks, attn) in enumerate(zip(self.up_blocks, self.up_attn)):
            level_index = len(self.widths) - 1 - step
            h = torch.cat([h, skips[level_index]], dim=1)
            for block in blocks:
                h = block(h, emb, context[level_index], frames)
            h = attn(h, positions, frames)
            if level_index > 0:
                h = F.interpolate(self.upsample[step](h), scale_factor=2.0, mode="nearest")
        out = self.out(F.silu(self.out_norm(h)))
        return out.unflatten(0, (b, frames))
