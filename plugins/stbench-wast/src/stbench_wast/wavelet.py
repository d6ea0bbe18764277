"""The Haar wavelet transforms WaST uses (2-D and 3-D, one level) and its high-frequency focal loss, in plain torch.

The reference takes the Haar filter bank from PyWavelets and runs the transforms as strided grouped
convolutions; here the filters are written down (they are +-1/sqrt(2)) and the transforms are the same
convolutions, so values and MAC counts agree. ``tests/fixtures/wavelet.pt`` pins them against the
reference's (PyWavelets') coefficients.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F

# PyWavelets' 'haar' bank: dec_lo = rec_lo = [s, s], dec_hi = [-s, s], rec_hi = [s, -s] with s = 1/sqrt(2).
# Analysis correlates with the reversed decomposition filters, synthesis transposes with the
# reconstruction filters: both come to low = [s, s] and high = [s, -s].
_S = 2 ** -0.5


def haar_pair(dtype=torch.float32):
    """The low- and high-pass Haar filters, each ``[2]``."""
    return torch.tensor([_S, _S], dtype=dtype), torch.tensor([_S, -_S], dtype=dtype)


def _outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.reshape(-1, 1) * b.reshape(1, -1)


def haar_filters_2d(dtype=torch.float32) -> torch.Tensor:
    """``[4, 1, 2, 2]``: LL, LH, HL, HH (first letter: the filter along H, second: along W)."""
    lo, hi = haar_pair(dtype)
    return torch.stack([_outer(lo, lo), _outer(hi, lo), _outer(lo, hi), _outer(hi, hi)]).unsqueeze(1)


def haar_filters_3d(dtype=torch.float32) -> torch.Tensor:
    """``[8, 1, 2, 2, 2]`` in the order LLL, LLH, LHL, LHH, HLL, HLH, HHL, HHH (letters along T, H, W)."""
    lo, hi = haar_pair(dtype)
    filters = [_outer(a, _outer(b, c)).reshape(2, 2, 2) for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)]
    return torch.stack(filters).unsqueeze(1)


def _pad_to_even(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Zero-pad the last ``dims`` axes by one at their end where their length is odd (the reference's padding)."""
    pad: List[int] = []
    for size in reversed(x.shape[-dims:]):
        pad += [0, size % 2]
    return F.pad(x, pad) if any(pad) else x


def dwt(x: torch.Tensor, filters: torch.Tensor) -> List[torch.Tensor]:
    """One level of the separable transform over the last 2 (``[B, C, H, W]``) or 3 (``[B, C, T, H, W]``) axes.

    Each sub-band is a stride-2 depthwise convolution with one filter, as the reference runs it; the
    list follows the order of ``filters``.
    """
    dims = filters.dim() - 2
    conv = F.conv3d if dims == 3 else F.conv2d
    channels = x.shape[1]
    x = _pad_to_even(x, dims)
    kernel = filters.to(x.dtype)
    return [conv(x, band.repeat(channels, *([1] * (dims + 1))), stride=2, groups=channels) for band in kernel]


def idwt(bands: Sequence[torch.Tensor], filters: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`dwt` (sub-bands in the order of ``filters``), one grouped transposed convolution."""
    dims = filters.dim() - 2
    first = bands[0]
    b, c = first.shape[:2]
    spatial = first.shape[2:]
    stacked = torch.stack(list(bands), dim=2).reshape(b, c * len(bands), *spatial)
    kernel = filters.to(first.dtype).repeat(c, *([1] * (dims + 1)))
    transpose = F.conv_transpose3d if dims == 3 else F.conv_transpose2d
    return transpose(stacked, kernel, stride=2, groups=c)


def _high_pass_mask(h: int, w: int, tau: float, device) -> torch.Tensor:
    """1 except within ``tau * max(h, w)`` of the four corners of an unshifted spectrum (the low frequencies)."""
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    mask = torch.ones(h, w, device=device)
    radius = tau * max(h, w)
    # the reference measures from the corner pixels (0, 0), (0, w-1), (h-1, 0), (h-1, w-1)
    for r, c in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
        mask[torch.sqrt((cols - c) ** 2 + (rows - r) ** 2) <= radius] = 0
    return mask


def high_frequency_focal_loss(pred: torch.Tensor, true: torch.Tensor, tau: float = 0.1,
                              alpha: float = 1.0) -> torch.Tensor:
    """WaST's high-frequency focal loss of ``[B, T, C, H, W]`` predictions (before its weight).

    Each frame's Haar LL band goes through an orthonormal 2-D FFT; the squared distance of the two
    spectra is weighted by a per-(frame, channel) focal matrix (``log(1 + |diff|^alpha)`` scaled to a
    maximum of 1, no gradient) and by a mask that removes the frequencies within ``tau * max(h, w)``
    of the spectrum's corners, and averaged.
    """
    pred, true = pred.float(), true.float()  # FFTs and the focal weights in float32 under any training precision
    filters = haar_filters_2d().to(pred.device)
    low_pred = dwt(pred.flatten(0, 1), filters[:1])[0]
    low_true = dwt(true.flatten(0, 1), filters[:1])[0]
    spectrum_pred = torch.fft.fft2(low_pred, norm="ortho")
    spectrum_true = torch.fft.fft2(low_true, norm="ortho")
    real = spectrum_pred.real - spectrum_true.real
    imag = spectrum_pred.imag - spectrum_true.imag
    distance = real ** 2 + imag ** 2
    with torch.no_grad():
        weight = torch.sqrt(distance) ** alpha
        weight = torch.log(weight + 1.0)
        weight = weight / weight.amax(dim=(-2, -1), keepdim=True)
        weight = torch.where(torch.isnan(weight), torch.zeros_like(weight), weight).clamp(0.0, 1.0)
    mask = _high_pass_mask(*distance.shape[-2:], tau, distance.device)
    return torch.mean(weight * distance * mask)
