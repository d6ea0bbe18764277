"""Decoding image frames (Pillow) and resizing them the way the reference loaders did."""
import io
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from stbench import UserError

Source = Union[str, Path, bytes]

# "first" keeps channel 0 of whatever is stored (OpenSTL's KTH reader does `np.array(img)[:, :, 0]`).
MODES = ("RGB", "L", "first")


def decode_image(source: Source, mode: str = "RGB", what: str = "") -> np.ndarray:
    """One image as uint8 ``[H, W, C]`` (C = 3 for ``RGB``, 1 for ``L`` and ``first``).

    ``source`` is a path or the encoded bytes (``what`` then names where they
    came from). A missing, truncated or undecodable image is a UserError.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    name = what or str(source)
    try:
        handle = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        with handle as image:
            image.load()  # decodes now, so truncated files fail here and not later
            if mode == "first":
                array = np.asarray(image if image.mode in ("L", "RGB") else image.convert("RGB"))
                array = array if array.ndim == 2 else array[..., 0]
            else:
                array = np.asarray(image.convert(mode))
    except FileNotFoundError:
        raise UserError(f"missing frame {name}; the data folder is incomplete, re-extract it") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise UserError(f"corrupt or truncated image {name} ({error}); replace the file or re-extract "
                        "the data") from None
    return array[..., None] if array.ndim == 2 else array


def stack_frames(frames: Sequence[np.ndarray], what: str) -> torch.Tensor:
    """uint8 ``[H, W, C]`` frames of one clip -> float32 ``[T, C, H, W]`` in 0..255."""
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1:
        raise UserError(f"{what}: frames of one clip differ in size ({', '.join(map(str, sorted(shapes)))}); "
                        "every frame of a video must have the same size")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()


def resize(frames: torch.Tensor, size: Tuple[int, int], mode: str = "bilinear",
           antialias: bool = False) -> torch.Tensor:
    """Resize ``[T, C, H, W]`` frames (values 0..255) to ``size = (H, W)``.

    ``bilinear`` without antialias matches OpenCV's ``INTER_LINEAR`` (half-pixel
    centres), ``bicubic`` matches ``INTER_CUBIC`` (a = -0.75); ``antialias``
    gives Pillow's / scipy.misc.imresize's filtered downscaling. Values are
    clamped to 0..255 as OpenCV saturates uint8 output.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(frames.shape[-2:]) == size:
        return frames
    out = F.interpolate(frames, size=size, mode=mode, align_corners=False, antialias=antialias)
    return out.clamp_(0.0, 255.0)


def _opencv_taps(source: int, target: int, clamp: bool):
    """Source indices and 11-bit weights of OpenCV's INTER_LINEAR along one axis (float32 positions, as cv::resize)."""
    scale = 1.0 / (target / source)  # OpenCV keeps 1 / inv_scale in double
    position = ((torch.arange(target, dtype=torch.float64) + 0.5) * scale - 0.5).to(torch.float32)
    first = torch.floor(position).to(torch.int64)
    fraction = position - first.to(torch.float32)
    if clamp:  # columns: a tap left of 0 or right of the last pixel takes that pixel whole; rows are not clamped
        fraction = torch.where((first < 0) | (first >= source - 1), torch.zeros_like(fraction), fraction)
        first = first.clamp(0, source - 1)
    upper = torch.round(fraction * 2048).to(torch.int32)  # saturate_cast<short>: round half to even
    lower = torch.round((1 - fraction) * 2048).to(torch.int32)
    return first.clamp(0, source - 1), (first + 1).clamp(0, source - 1), lower, upper


def resize_like_opencv(frames: torch.Tensor, size: Tuple[int, int],
                       window: Optional[Tuple[int, int, int, int]] = None) -> torch.Tensor:
    """``cv2.resize(frame, (W, H), interpolation=cv2.INTER_LINEAR)`` of uint8 frames, bit for bit.

    ``frames``: ``[..., H, W]`` with integer values 0..255 (any dtype); returns float32 ``[..., *size]`` holding
    the uint8 values OpenCV gives (mmcv's ``imresize`` and OpenSTL's video transforms call it): 11-bit fixed-point
    weights, a horizontal pass in int32, then the vectorised vertical pass ``((S0 >> 4) * b0 >> 16) + ((S1 >> 4) *
    b1 >> 16)``, rounded by ``(+ 2) >> 2``. Checked equal to OpenCV 4.10 and 5.1 on x86 (tests/fixtures).
    ``window = (top, left, height, width)`` computes only that part of the resized frame (a crop that follows).
    """
    size = (int(size[0]), int(size[1]))
    top_row, left_column, height, width = window if window is not None else (0, 0, *size)
    if tuple(frames.shape[-2:]) == size:
        return frames[..., top_row:top_row + height, left_column:left_column + width].to(torch.float32)
    rows_wanted, columns_wanted = slice(top_row, top_row + height), slice(left_column, left_column + width)
    top, bottom, weight_top, weight_bottom = (taps[rows_wanted] for taps in
                                              _opencv_taps(frames.shape[-2], size[0], clamp=False))
    # only the source rows the vertical pass reads go through the horizontal one (a quarter of them at 4x down)
    needed, row_of = torch.unique(torch.cat([top, bottom]), return_inverse=True)
    pixels = frames.index_select(-2, needed).to(torch.int32)
    left, right, weight_left, weight_right = (taps[columns_wanted] for taps in
                                              _opencv_taps(frames.shape[-1], size[1], clamp=True))
    rows = pixels[..., left] * weight_left + pixels[..., right] * weight_right  # scale 2048, exact in int32
    rows >>= 4
    out = rows.index_select(-2, row_of[:len(top)]) * weight_top[:, None]
    out >>= 16
    lower = rows.index_select(-2, row_of[len(top):]) * weight_bottom[:, None]
    lower >>= 16
    out += lower
    out += 2
    out >>= 2
    return out.clamp_(0, 255).to(torch.float32)


def center_crop(frames: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Crop ``[..., H, W]`` to ``size`` around the centre (top/left offsets rounded down)."""
    height, width = frames.shape[-2:]
    if height < size[0] or width < size[1]:
        raise UserError(f"frames of {height}x{width} are smaller than the {size[0]}x{size[1]} crop")
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return frames[..., top:top + size[0], left:left + size[1]]


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """0..255 values -> [0, 1] (the min-max normalisation every video dataset here uses)."""
    return frames.div_(255.0)
