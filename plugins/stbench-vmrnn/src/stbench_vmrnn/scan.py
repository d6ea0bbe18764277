"""Mamba's selective scan in plain PyTorch: a step-by-step reference and a chunked form, same arithmetic.

The recurrence (Gu & Dao 2023, S6), per channel ``d`` and state index ``n``:

    delta_l = softplus(delta_l + delta_bias)            (each only when asked for)
    h_l     = exp(delta_l * A[d, n]) * h_{l-1} + delta_l * B_l[n] * u_l
    y_l     = sum_n C_l[n] * h_l[n]  +  D[d] * u_l       then  y_l *= silu(z_l)  (when z is given)

``B`` and ``C`` vary along the sequence and are shared by groups of channels: shape ``[batch, groups,
N, L]`` (or ``[batch, N, L]`` for one group). VMamba's cross-scan runs its four scan orders as four
groups of one call.

``sequential`` walks the ``L`` positions one by one. ``chunked`` cuts the sequence into chunks of
``chunk`` positions, runs the recurrence inside all chunks at once from a zero state (``chunk`` steps),
carries the state across chunk boundaries (``L / chunk`` steps) and adds each chunk's carried-in
state, decayed to every position, to its local states. Both use only products of the decays (never
their inverses), so the chunked form is as stable as the sequential one and differs from it only in
the order of float additions; about ``2 sqrt(L)`` Python steps instead of ``L``.

Everything is elementwise (and a sum over ``n``): like the CUDA kernel the references call, whose
operations fvcore does not count, the scan adds no multiply-accumulates to a FLOP count.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F

SCANS = ("sequential", "chunked")


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: Optional[torch.Tensor] = None, z: Optional[torch.Tensor] = None,
                   delta_bias: Optional[torch.Tensor] = None, delta_softplus: bool = False,
                   method: str = "chunked", chunk: Optional[int] = None) -> torch.Tensor:
    """``y [batch, dim, L]`` for ``u``, ``delta``, ``z``: ``[batch, dim, L]``; ``A``: ``[dim, N]``;
    ``B``, ``C``: ``[batch, groups, N, L]`` or ``[batch, N, L]``; ``D``, ``delta_bias``: ``[dim]``.

    Computed in float32 (as the reference computes) and returned in ``u``'s dtype.
    ``chunk`` (chunked only) defaults to ``ceil(sqrt(L))``.
    """
    if method not in SCANS:
        raise ValueError(f"selective scan: method must be one of {', '.join(SCANS)}, got {method!r}")
    if A.is_complex():
        raise ValueError("selective scan: complex A is not supported (VMamba's A is real)")
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    if B.dim() != 4 or C.dim() != 4:
        raise ValueError("selective scan: B and C must vary along the sequence: [batch, (groups,) N, L]")
    dtype = u.dtype
    batch, dim, length = u.shape
    groups, state = B.shape[1], A.shape[1]
    if dim % groups or C.shape[1] != groups:
        raise ValueError(f"selective scan: {dim} channels cannot be shared out among {groups} groups of B/C")
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # channels as [groups, channels per group] so B and C broadcast over a group's channels; positions first,
    # so that every step of the recurrence reads one contiguous block
    per_group = (batch, groups, dim // groups, length)
    delta_g, u_g = delta.view(per_group).permute(3, 0, 1, 2), u.view(per_group).permute(3, 0, 1, 2)  # [L, b, g, c]
    A_g = A.float().view(groups, dim // groups, state)
    decay = torch.exp(delta_g[..., None] * A_g)                                  # [L, b, g, c, N]
    drive = (delta_g * u_g)[..., None] * B.float().permute(3, 0, 1, 2)[:, :, :, None]  # [L, b, g, c, N]
    C_t = C.float().permute(3, 0, 1, 2)[:, :, :, None]                          # [L, b, g, 1, N]
    if method == "sequential":
        y = _sequential(decay, drive, C_t)
    else:
        y = _chunked(decay, drive, C_t, chunk or math.ceil(math.sqrt(length)))
    y = y.permute(1, 2, 3, 0).reshape(batch, dim, length)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def _sequential(decay: torch.Tensor, drive: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """``[L, ...]`` position-major inputs -> ``y [L, ...]``, one position at a time."""
    # unbind once: indexing position by position would make autograd zero-fill a full-size gradient per position
    h = torch.zeros_like(drive[0])
    ys = []
    for a, b, c in zip(decay.unbind(0), drive.unbind(0), C.unbind(0)):
        h = a * h + b
        ys.append((h * c).sum(-1))
    return torch.stack(ys)


def _chunked(decay: torch.Tensor, drive: torch.Tensor, C: torch.Tensor, chunk: int) -> torch.Tensor:
    """The same recurrence over ``chunk``-long pieces at once, then across the pieces."""
    length = decay.shape[0]
    chunk = max(1, min(int(chunk), length))
    chunks = -(-length // chunk)
    pad = chunks * chunk - length
    if pad:  # padded positions decay by 1 and add nothing: they leave the state as it is
        decay = torch.cat([decay, decay.new_ones(pad, *decay.shape[1:])])
        drive = torch.cat([drive, drive.new_zeros(pad, *drive.shape[1:])])
    # [chunks, chunk, ...]: step t of every chunk at once, from a zero state; also the decay since the chunk began
    # (made contiguous per step: strided operands are several times slower on CPU)
    steps_a = decay.unflatten(0, (chunks, chunk)).transpose(0, 1).contiguous().unbind(0)
    steps_b = drive.unflatten(0, (chunks, chunk)).transpose(0, 1).contiguous().unbind(0)
    local, since = [steps_b[0]], [steps_a[0]]
    for a, b in zip(steps_a[1:], steps_b[1:]):
        local.append(a * local[-1] + b)
        since.append(a * since[-1])
    # the state each chunk starts from, carried across the chunk boundaries (from each chunk's last position)
    carried = [torch.zeros_like(local[-1][0])]
    for a, b in zip(since[-1].unbind(0)[:-1], local[-1].unbind(0)[:-1]):
        carried.append(a * carried[-1] + b)
    start = torch.stack(carried)                                      # [chunks, ...]
    states = torch.stack(local, dim=1) + torch.stack(since, dim=1) * start[:, None]
    return (states.flatten(0, 1)[:length] * C).sum(-1)
