"""The shared ViT backbone: frozen blocks with RA-MoE adapters and lightweight temporal attention."""
import torch
from torch import nn

from .ramoe import RankAdaptiveMoE


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the MLP activation of OpenAI's CLIP weights."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": nn.GELU, "quick_gelu": QuickGELU}


def sincos_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """Fixed 2-D sinusoidal position encoding ``[height * width, dim]`` (half for rows, half for columns)."""
    if dim % 4:
        raise ValueError(f"the 2-D sinusoidal position encoding needs a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                indexing="ij")
    parts = []
    for coords in (rows.reshape(-1), cols.reshape(-1)):
        angles = coords[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


class AdapterSettings:
    """The RA-MoE settings every adapter of the backbone shares."""

    def __init__(self, *, max_rank, init_rank, alpha, rank_grad_scale, passes):
        self.kwargs = dict(max_rank=max_rank, init_rank=init_rank, alpha=alpha, rank_grad_scale=rank_grad_scale,
                           passes=passes)

    def make(self, dim, experts):
        return RankAdaptiveMoE(dim, dim, experts, **self.kwargs)


class Attention(nn.Module):
    """Multi-head self-attention; frozen ``qkv`` / ``proj`` plus RA-MoE on Q, K, V and the projection."""

    def __init__(self, dim, heads, adapters: AdapterSettings, qkv_experts, proj_experts):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.lora_q = adapters.make(dim, qkv_experts)
        self.lora_k = adapters.make(dim, qkv_experts)
        self.lora_v = adapters.make(dim, qkv_experts)
        self.lora_proj = adapters.make(dim, proj_experts)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = q + self.lora_q(x), k + self.lora_k(x), v + self.lora_v(x)
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        # Written out (not F.scaled_dot_product_attention) so the MAC counter sees both products.
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out) + self.lora_proj(out)


class TemporalAttention(nn.Module):
    """Eq. 11: ``sigmoid(FFN(x') + RA-MoE_1D(x'))`` with ``x'`` the token average, added to every token.

    The FFN's second layer starts at zero and the RA-MoE's ``B`` too, so at the start the
    module adds the constant 0.5 to every channel of every token -- which the next
    LayerNorm (pre-norm block or final norm) removes exactly: the pretrained behaviour is
    preserved, as the paper intends.
    """

    def __init__(self, dim, reduction, adapters: AdapterSettings, experts):
        super().__init__()
        hidden = max(1, dim // reduction)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)
        self.moe = adapters.make(dim, experts)

    def forward(self, x):
        pooled = x.mean(dim=1, keepdim=True)
        return torch.sigmoid(self.fc2(self.act(self.fc1(pooled))) + self.moe(pooled))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, act):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = ACTIVATIONS[act]()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm ViT block with temporal attention between self-attention and the FFN."""

    def __init__(self, dim, heads, mlp_ratio, act, eps, adapters, qkv_experts, proj_experts, temporal_experts,
                 temporal_reduction, temporal=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, adapters, qkv_experts, proj_experts)
        self.temporal = TemporalAttention(dim, temporal_reduction, adapters, temporal_experts) if temporal else None
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        if self.temporal is not None:
            x = x + self.temporal(x)
        return x + self.mlp(self.norm2(x))


# The pretrained (frozen) tensors of the backbone, in timm's names; everything else is trainable.
def frozen_names(depth, pre_norm):
    names = []
    for i in range(depth):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            names += [f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"]
    names += ["norm.weight", "norm.bias"]
    if pre_norm:
        names += ["norm_pre.weight", "norm_pre.bias"]
    return names


class Backbone(nn.Module):
    """ViT blocks shared by every task: tokens ``[B, N, D]`` (positions already added) -> ``[B, N, D]``."""

    def __init__(self, *, dim=768, depth=12, heads=12, mlp_ratio=4.0, act="gelu", eps=1e-6, pre_norm=False,
                 qkv_experts=6, proj_experts=2, temporal_experts=2, temporal_reduction=6, temporal=True,
                 max_rank=32, init_rank=4.5, lora_alpha=1.0, rank_grad_scale=1.0, passes="two"):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"mlp_act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        adapters = AdapterSettings(max_rank=max_rank, init_rank=init_rank, alpha=lora_alpha,
                                   rank_grad_scale=rank_grad_scale, passes=passes)
        self.dim, self.depth, self.pre_norm = dim, depth, pre_norm
        self.norm_pre = nn.LayerNorm(dim, eps=eps) if pre_norm else nn.Identity()
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, act, eps, adapters, qkv_experts, proj_experts, temporal_experts,
                  temporal_reduction, temporal) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.apply(_init_frozen)

    def frozen_parameters(self):
        own = dict(self.named_parameters())
        return [own[name] for name in frozen_names(self.depth, self.pre_norm)]

    def forward(self, tokens):
        x = self.norm_pre(tokens)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def _init_frozen(module):
    """timm's ViT init for the layers a checkpoint would fill (used when none is given)."""
    if isinstance(module, (Attention, Mlp)):
        for layer in module.children():
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)

