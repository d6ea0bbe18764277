"""Moments of convolution kernels (PhyDNet's K2M / M2K) and the moment constraint on PhyCell's filters.

A ``k x k`` kernel ``w`` acts on a smooth field like a weighted sum of its partial derivatives: the
weight of ``d^(a+b) / dx^a dy^b`` is the moment ``m[a, b] = sum_ij M[a, i] M[b, j] w[i, j]`` with
``M[a, i] = (i - c)^a / a!`` and ``c = (k - 1) // 2`` the kernel's centre (a Taylor expansion of the
field around the centre). ``M`` is invertible, so moments and kernels convert both ways.
"""
import math

import torch


def moment_matrix(size: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """``M[a, i] = (i - (size-1)//2)^a / a!``, ``[size, size]``."""
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) // 2
    orders = torch.arange(size, dtype=dtype, device=device)
    factorials = torch.tensor([float(math.factorial(a)) for a in range(size)], dtype=dtype, device=device)
    return offsets[None, :] ** orders[:, None] / factorials[:, None]


def kernel_to_moments(kernels: torch.Tensor) -> torch.Tensor:
    """Moments ``[..., k, k]`` of kernels ``[..., k, k]`` (row axis first), computed in the kernels' dtype."""
    rows = moment_matrix(kernels.shape[-2], kernels.dtype, kernels.device)
    cols = moment_matrix(kernels.shape[-1], kernels.dtype, kernels.device)
    return torch.einsum("ai,bj,...ij->...ab", rows, cols, kernels)


def moments_to_kernel(moments: torch.Tensor) -> torch.Tensor:
    """Kernels ``[..., k, k]`` with the given moments (the inverse of :func:`kernel_to_moments`)."""
    rows = torch.linalg.inv(moment_matrix(moments.shape[-2], moments.dtype, moments.device))
    cols = torch.linalg.inv(moment_matrix(moments.shape[-1], moments.dtype, moments.device))
    return torch.einsum("ia,jb,...ab->...ij", rows, cols, moments)


def moment_targets(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``[size*size, size, size]``: filter ``f`` should have the single moment ``(f // size, f % size)``.

    Filter ``f`` of PhyCell's first convolution is thereby tied to one partial derivative
    (identity, d/dy, d/dx, ..., up to order ``2 (size - 1)``), as PhyDNet's training does.
    """
    return torch.eye(size * size, dtype=dtype, device=device).view(size * size, size, size)


def moment_loss(weight: torch.Tensor) -> torch.Tensor:
    """PhyDNet's moment constraint on a ``[k*k, C, k, k]`` convolution weight.

    For each input channel, the mean squared difference between the moments of the ``k*k``
    filters and :func:`moment_targets`; summed over channels. Moments are computed in float64
    and compared in the weight's dtype, as the reference does.
    """
    filters, _, k, k2 = weight.shape
    if k != k2 or filters != k * k:
        raise ValueError(f"the moment constraint needs a [k*k, C, k, k] weight, got {list(weight.shape)}")
    moments = kernel_to_moments(weight.double()).to(weight.dtype)
    targets = moment_targets(k, weight.dtype, weight.device)[:, None]
    return (moments - targets).pow(2).mean(dim=(0, 2, 3)).sum()
