"""Decoding image frames (Pillow) and resizing them the way the reference loaders did."""
import io
from pathlib import Path
from typing import Sequence, Tuple, Union

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
