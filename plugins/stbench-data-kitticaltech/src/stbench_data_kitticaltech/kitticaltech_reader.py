"""Reading KITTI (hickle) and Caltech Pedestrian (.seq) into clips, and the cached clip arrays (numpy, torch)."""
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch

from stbench import UserError, require
from stbench_data_common import (LazyH5, LazyNpy, VideoClips, check_length, decode_image, end_aligned_starts, load_npy,
                                 non_empty, open_h5, prepare_needed, read_h5, require_dir, require_file, resolve_split,
                                 runs, stack_frames, to_unit)

from .hickle import frames_dataset, source_names
from .norpix import SeqFile

from .kitticaltech import CACHE, CALTECH, CALTECH_EVERY, HEIGHT, HINT, KITTI, SPEC, WIDTH


# ----------------------------------------------------------------- KITTI hickle (train)

def kitti_clips(root, length):
    """([(hkl path, start)], frames dataset name, description) from X_train.hkl / sources_train.hkl."""
    folder = Path(root) / KITTI
    frames_path = require_file(folder / "X_train.hkl", "KITTI training frames", HINT)
    sources_path = require_file(folder / "sources_train.hkl", "the video name of each KITTI frame", HINT)
    with open_h5(frames_path, HINT) as handle:
        frames = frames_dataset(handle, frames_path, HINT)
        name, count, shape = frames.name, frames.shape[0], tuple(frames.shape[1:])
    if shape != (HEIGHT, WIDTH, 3):
        raise UserError(f"{frames_path} holds frames of shape {shape}; expected (128, 160, 3) as PredNet's "
                        f"process_kitti.py writes them; {HINT}")
    with open_h5(sources_path, HINT) as handle:
        sources = source_names(handle, sources_path, HINT)
    if len(sources) != count:
        raise UserError(f"{sources_path} names {len(sources)} frames but {frames_path} holds {count}; "
                        "the two files come from different downloads")
    clips = [(str(frames_path), first + start) for _, first, size in runs(sources)
             for start in end_aligned_starts(size, length, length)]
    return clips, name, f"KITTI {frames_path.name}: {count} frames of {len(runs(sources))} drives"


def read_hkl(files, name, path, start, length):
    return _unit_frames(read_h5(files[path][name], slice(start, start + length), f"{path} frames"))


def _unit_frames(frames):
    """[T, H, W, C] uint8 (or float in [0, 1]) -> float32 [T, C, H, W] in [0, 1]."""
    tensor = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float()
    return to_unit(tensor) if frames.dtype == np.uint8 else tensor


# ----------------------------------------------------------------- Caltech .seq (test)

def caltech_files(root):
    folder = require_dir(Path(root) / CALTECH, "Caltech Pedestrian test videos", HINT)
    files = sorted(folder.glob("set*/*.seq"))
    if not files:
        downloads = prepare_needed(root, "kitticaltech-10-1", [f"{CALTECH}/set*.tar", f"{CALTECH}/*.zip"],
                                   target=CALTECH)
        raise UserError(f"no set*/V*.seq videos under {Path(os.path.abspath(folder))}; {HINT}{downloads}")
    return files


def caltech_clips(root, length):
    """([(SeqFile, [kept frame indices])], clips) for every 3rd frame of every test video."""
    videos, clips = [], []
    for path in caltech_files(root):
        seq = SeqFile(path)
        kept = list(range(CALTECH_EVERY - 1, len(seq), CALTECH_EVERY))
        videos.append((seq, kept))
        clips += [(len(videos) - 1, start) for start in end_aligned_starts(len(kept), length, length)]
    return videos, clips


def process_im(image: np.ndarray) -> np.ndarray:
    """PredNet's ``process_im`` as OpenSTL runs it: scikit-image ``resize`` to height 128, centre 160 columns.

    ``resize(image, (128, round(W * 128 / H)), preserve_range=True)`` with scikit-image's defaults: bilinear
    (order 1), edges mirrored, and a Gaussian anti-aliasing filter of sigma (factor - 1) / 2 per axis before
    sampling. Values stay floats in 0..255 (no rounding back to uint8), as in OpenSTL.
    """
    skimage_resize = require("skimage.transform", "reading Caltech Pedestrian (OpenSTL's resize)", "scikit-image").resize
    height, width = image.shape[:2]
    resized = skimage_resize(image, (HEIGHT, int(np.round(width * HEIGHT / height))), preserve_range=True)
    left = int((resized.shape[1] - WIDTH) / 2)
    if left < 0:
        raise UserError(f"Caltech frames of {width}x{height} are narrower than 160 after scaling to height 128")
    return resized[:, left:left + WIDTH]


def read_seq(videos, video, start, length):
    seq, kept = videos[video]
    images = [decode_image(seq.jpeg(kept[k]), "RGB", what=f"{seq.path} frame {kept[k]}")
              for k in range(start, start + length)]
    stack_frames(images, str(seq.path))  # one size for every frame, or a UserError
    frames = np.stack([process_im(image) for image in images]).astype(np.float32)
    return to_unit(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous())


# ----------------------------------------------------------------- OpenSTL's npy cache

def cache_clips(root, split, length):
    folder = Path(root) / CACHE
    data_path = require_file(folder / f"{split}_data.npy", "cached frames", HINT)
    index_path = require_file(folder / f"{split}_idx.npy", "cached clip starts", HINT)
    data, starts = load_npy(data_path), load_npy(index_path, mmap_mode=None).astype(np.int64).reshape(-1)
    if data.ndim != 4 or tuple(data.shape[1:]) != (HEIGHT, WIDTH, 3):
        raise UserError(f"{data_path} has shape {tuple(data.shape)}; expected (N, 128, 160, 3)")
    starts = np.sort(starts)
    gaps = np.diff(starts)
    made_for = int(gaps[gaps > 0].min()) if (gaps > 0).any() else 11
    if length > made_for:
        raise UserError(f"{index_path} holds starts of {made_for}-frame clips (clips {made_for} apart); a "
                        f"{length}-frame clip could span two videos: use {KITTI}/ and {CALTECH}/ for longer tasks")
    if len(starts) and (starts.min() < 0 or starts.max() + length > len(data)):
        raise UserError(f"{index_path} has clip starts outside the {len(data)} frames of {data_path.name}; "
                        "the two files come from different downloads")
    clips = [(0, int(start)) for start in starts]
    return clips, LazyNpy(data_path), f"OpenSTL cache {data_path.name} ({len(data)} frames)"


def read_npy(data, _, start, length):
    return _unit_frames(data.array[start:start + length])


# ----------------------------------------------------------------- the dataset

def open_kitticaltech(root, split, t_in, t_out):
    split = resolve_split("kitticaltech", split)
    length = check_length(SPEC, t_in, t_out)
    primary = Path(root) / (KITTI if split == "train" else CALTECH)
    if primary.is_dir() and split == "train":
        clips, name, description = kitti_clips(root, length)
        read = partial(read_hkl, LazyH5(HINT), name)
    elif primary.is_dir():
        videos, clips = caltech_clips(root, length)
        read, description = partial(read_seq, videos), f"Caltech {len(videos)} videos, every 3rd frame"
    elif (Path(root) / CACHE).is_dir():
        clips, data, description = cache_clips(root, split, length)
        read = partial(read_npy, data)
    else:
        downloads = prepare_needed(root, "kitticaltech-10-1", ["set06.tar", "data_and_labels.zip"]) \
            if split == "test" else ""
        raise UserError(f"kitticaltech {split} data not found under {Path(os.path.abspath(root))}: no "
                        f"{primary.name}/ and no {CACHE}/; {HINT}{downloads}")
    dataset = VideoClips(clips, read, t_in, t_out, SPEC, description=description)
    return non_empty(dataset, "kitticaltech", split, root)
