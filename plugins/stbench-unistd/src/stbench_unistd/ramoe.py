"""Rank-adaptive mixture of LoRA experts (RA-MoE, UniSTD Eq. 5-10)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

PASSES = ("two", "one")


class RankAdaptiveMoE(nn.Module):
    """The adapter term ``alpha * sum_i G_i(x) f_{r_i}(x)`` of Eq. 8 (the frozen ``x W`` is not here).

    Every expert ``i`` owns ``A_i`` (``dim_in x max_rank``), ``B_i`` (``max_rank x dim_out``)
    and a continuous rank ``r_i``. The rank is applied as a mask on the ``max_rank``
    inner dimension (the truncated identity ``I_n[:k]`` of Eq. 6-7), and a fractional rank
    interpolates linearly between its two neighbouring integer ranks::

        f_r(x) = (1 - phi) g_floor(x) + phi g_floor+1(x),   phi = r - floor(r)
        g_k(x) = x A I_n[:k] B

    so ``df/dr = gamma * (g_floor+1 - g_floor)`` (Eq. 9) and at an integer ``r`` the
    adapter equals the rank-``r`` LoRA exactly. (Eq. 7 as printed swaps the two weights,
    which would make ``f`` vanish at every integer rank; we read it as the usual linear
    interpolation that Eq. 9's gradient describes.)

    ``passes="two"`` evaluates ``g_floor`` and ``g_floor+1`` separately, as Eq. 7 writes
    them -- the compute the paper's Table 9 counts. ``passes="one"`` folds both into one
    mask: the same values and gradients for half the adapter multiply-adds.

    The router ``G`` is a per-token softmax over the experts (dense: every expert runs).
    ``B`` starts at zero, so a fresh adapter adds nothing to the frozen layer.
    """

    def __init__(self, dim_in: int, dim_out: int, experts: int, max_rank: int, init_rank: float = 4.5,
                 alpha: float = 1.0, rank_grad_scale: float = 1.0, passes: str = "two"):
        super().__init__()
        if passes not in PASSES:
            raise ValueError(f"passes must be one of {PASSES}, got {passes!r}")
        if not 1 <= init_rank <= max_rank:
            raise ValueError(f"init_rank {init_rank} must lie in [1, max_rank={max_rank}]")
        self.experts, self.max_rank = int(experts), int(max_rank)
        self.alpha, self.rank_grad_scale, self.passes = float(alpha), float(rank_grad_scale), passes
        self.router = nn.Linear(dim_in, experts)
        self.lora_A = nn.Parameter(torch.empty(dim_in, experts, max_rank))
        self.lora_B = nn.Parameter(torch.zeros(experts, max_rank, dim_out))
        self.rank = nn.Parameter(torch.full((experts,), float(init_rank)))
        self.register_buffer("positions", torch.arange(max_rank, dtype=torch.float32), persistent=False)
        # LoRA's usual start: A ~ U(-1/sqrt(dim_in), 1/sqrt(dim_in)) (kaiming-uniform, a=sqrt(5)), B = 0.
        bound = 1.0 / math.sqrt(dim_in)
        nn.init.uniform_(self.lora_A, -bound, bound)

    def clamped_rank(self) -> torch.Tensor:
        return self.rank.clamp(1.0, float(self.max_rank))

    def rank_masks(self):
        """(mask of floor(r), mask of floor(r)+1, phi) per expert; phi carries Eq. 9's gradient."""
        rank = self.clamped_rank()
        floor = rank.detach().floor()
        frac = rank - floor  # value r - floor(r), gradient 1
        phi = self.rank_grad_scale * frac - (self.rank_grad_scale - 1.0) * frac.detach()  # gradient gamma
        floor_mask = (self.positions < floor[:, None]).to(frac.dtype)
        ceil_mask = (self.positions < floor[:, None] + 1).to(frac.dtype)
        return floor_mask, ceil_mask, phi

    def _mixed(self, x, weights):
        """``sum_i (x A_i * weights_i) B_i`` for per-token, per-expert, per-rank ``weights``."""
        dim_in, experts, rank = self.lora_A.shape
        hidden = (x @ self.lora_A.reshape(dim_in, experts * rank)).unflatten(-1, (experts, rank))
        return (hidden * weights).flatten(-2) @ self.lora_B.reshape(experts * rank, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.softmax(self.router(x), dim=-1).unsqueeze(-1)  # [..., E, 1]
        floor_mask, ceil_mask, phi = self.rank_masks()
        phi = phi[:, None]
        if self.passes == "two":
            out = self._mixed(x, gate * ((1 - phi) * floor_mask)) + self._mixed(x, gate * (phi * ceil_mask))
        else:
            out = self._mixed(x, gate * ((1 - phi) * floor_mask + phi * ceil_mask))
        return self.alpha * out

    @torch.no_grad()
    def round_ranks(self) -> None:
        """Discretise the ranks (after the rank-search epochs) and stop training them."""
        self.rank.copy_(self.clamped_rank().round())
        self.rank.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"experts={self.experts}, max_rank={self.max_rank}, passes={self.passes!r}"


def rank_modules(module: nn.Module):
    return [m for m in module.modules() if isinstance(m, RankAdaptiveMoE)]
