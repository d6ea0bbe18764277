"""USTEP's temporal scale sets: micro segments U, macro segments V and the paper's partition function."""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch


def default_delta_t(t_in: int, t_out: int) -> int:
    """The paper's rule (Sec. V-E): 5 frames per micro segment for long videos (T + T' > 10), else 2."""
    return 5 if t_in + t_out > 10 else 2


@dataclass(frozen=True)
class Segmentation:
    """How a task's frames fall into segments.

    ``delta_t`` frames make one micro segment U (non-overlapping). A macro segment V is
    ``k`` consecutive micro segments (``k * delta_t >= delta_T``, ``delta_T`` defaults to
    ``T_in``) and slides one micro segment at a time (Definitions A-C, Fig. 3). The
    observed frames are padded at the front with ``pad`` frames so they fill ``n_observed``
    whole segments; ``n_predicted`` segments cover the ``t_out`` future frames.
    """

    delta_t: int
    k: int
    pad: int
    n_observed: int
    n_predicted: int

    @property
    def delta_T(self) -> int:
        """Frames in one macro segment."""
        return self.k * self.delta_t

    @property
    def first_step(self) -> int:
        """Index of the first micro segment that closes a whole macro segment (where the recurrence starts)."""
        return self.k - 1

    @property
    def steps(self) -> int:
        """Cross-segment steps of one inference: each closes a macro segment and predicts the next micro segment."""
        return self.n_observed + self.n_predicted - 1 - self.first_step


def segmentation(t_in: int, t_out: int, delta_t: Optional[int] = None,
                 delta_T: Optional[int] = None) -> Segmentation:
    """The segmentation of a ``t_in -> t_out`` task (``None`` picks the paper's defaults)."""
    delta_t = default_delta_t(t_in, t_out) if delta_t is None else int(delta_t)
    delta_T = t_in if delta_T is None else int(delta_T)
    if delta_t < 1:
        raise ValueError(f"delta_t must be at least 1 frame, got {delta_t}")
    if not 1 <= delta_T:
        raise ValueError(f"delta_T must be at least 1 frame, got {delta_T}")
    n_observed = math.ceil(t_in / delta_t)
    pad = n_observed * delta_t - t_in
    # a macro segment never reaches further back than the (padded) observation
    k = min(math.ceil(delta_T / delta_t), n_observed)
    return Segmentation(delta_t, k, pad, n_observed, math.ceil(t_out / delta_t))


def pad_front(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``[B, T, ...]`` with ``frames`` zero frames put before the first one."""
    if frames <= 0:
        return x
    return torch.cat([x.new_zeros((x.shape[0], frames) + tuple(x.shape[2:])), x], dim=1)


def partition(x: torch.Tensor, delta_t: int, delta_T: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The partition function: a sequence ``[B, T, ...]`` -> (micro set U, macro set V).

    ``T`` need not be a multiple of ``delta_t``: zero frames are padded at the front so the
    last frame closes the last segment. Returns ``U [B, N, delta_t, ...]`` (N non-overlapping
    segments) and ``V [B, N - k + 1, k * delta_t, ...]``, where macro segment ``V[:, i]`` is
    micro segments ``i .. i + k - 1`` and ends with micro segment ``i + k - 1``
    (``k = ceil(delta_T / delta_t)``, at most N). With ``k = 2`` there are ``|U| - 1``
    macro segments, as in Fig. 3.
    """
    b, t = x.shape[:2]
    rest = tuple(x.shape[2:])
    n = math.ceil(t / delta_t)
    x = pad_front(x, n * delta_t - t)
    u = x.reshape((b, n, delta_t) + rest)
    k = min(math.ceil(delta_T / delta_t), n)
    # unfold puts the window axis last; move it back beside the segment axis
    v = u.unfold(1, k, 1)  # [B, N-k+1, delta_t, *rest, k]
    v = v.movedim(-1, 2).reshape((b, n - k + 1, k * delta_t) + rest)
    return u, v

