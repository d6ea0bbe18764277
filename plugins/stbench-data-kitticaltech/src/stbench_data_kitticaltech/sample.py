"""Tiny KITTI (PredBench's PNG drive folders) and KITTI -> Caltech (PredNet's hickle files, Norpix .seq movies)
data, for tests: core's dataset contract test and this plugin's."""
import struct
from pathlib import Path

import h5py
import numpy as np

from stbench import SampleData
from stbench_data_common.testing import frames, jpeg_bytes, sample_of, write_image

SOURCES = ["city-2011_09_26_drive_0001_sync"] * 34 + ["road-2011_09_26_drive_0015_sync"] * 26


def write_drive(folder, count, size=(19, 62), raw_names=False, seed=0):
    """``count`` PNG frames named ``<i>.png`` (or KITTI's own ``<i:010d>.png``) in ``folder``."""
    for index, frame in enumerate(frames(count, *size, seed=seed)):
        write_image(Path(folder) / (f"{index:010d}.png" if raw_names else f"{index}.png"), frame)


def make_kitti_sample(root) -> SampleData:
    """Train: 25 frames (KITTI's own nested names) + 22 frames; test: 22 frames.

    kitti-10-10 starts clips at range(0, frames - 20, stride) as PredBench does: train stride 4 gives 2 + 1
    clips, test stride 1 gives 2.
    """
    root = Path(root)
    write_drive(root / "kitti" / "train" / "2011_09_26_drive_0001_sync" / "image_02" / "data", 25, raw_names=True)
    write_drive(root / "kitti" / "train" / "2011_09_26_drive_0002_sync", 22, seed=1)
    write_drive(root / "kitti" / "test" / "2011_09_26_drive_0005_sync", 22, seed=2)
    return sample_of("kitti-10-10", {"train": 3, "test": 2}, (3, 128, 160))


def write_hkl_v2(path, frames_array, sources):
    """PredNet's files were written by hickle 2: the object under /data_0, typed by an attribute."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, data in ((path, frames_array), (path.with_name(path.name.replace("X_", "sources_")),
                                              np.array([s.encode() for s in sources]))):
        with h5py.File(name, "w") as handle:
            handle.attrs["CLASS"], handle.attrs["VERSION"] = b"hickle", b"2"
            dataset = handle.create_dataset("data_0", data=data)
            dataset.attrs["type"] = [b"ndarray" if data.ndim == 4 else b"list"]


def write_seq(path, images, gap=8, allocated=None):
    """A Norpix .seq movie: 1024-byte header, then [uint32 size][JPEG][timestamp + padding] per frame."""
    height, width = images[0].shape[:2]
    header = bytearray(1024)
    struct.pack_into("<I", header, 0, 0xFEED)
    header[4:24] = "Norpix seq".encode("utf-16-le")
    struct.pack_into("<ii", header, 28, 3, 1024)
    struct.pack_into("<9I", header, 548, width, height, 8, 8, width * height * 3, 102,
                     len(images) if allocated is None else allocated, 0, width * height * 3)
    struct.pack_into("<d", header, 584, 30.0)
    body = bytearray()
    for index, image in enumerate(images):
        data = jpeg_bytes(image)
        body += struct.pack("<I", len(data) + 4) + data + struct.pack("<IHH", 1_200_000_000 + index, 33 * index, 0)
        body += bytes(gap - 8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(header) + bytes(body))
    return path


def make_kitticaltech_sample(root) -> SampleData:
    """60 KITTI frames of two drives (5 clips of 11), Caltech videos of 40, 70 and 20 frames (1 + 2 + 0 clips)."""
    root = Path(root)
    write_hkl_v2(root / "kitti_hkl" / "X_train.hkl", np.stack(frames(60, 128, 160)), SOURCES)
    write_seq(root / "caltech" / "set06" / "V000.seq", frames(40, 48, 64, seed=1))
    write_seq(root / "caltech" / "set06" / "V001.seq", frames(70, 48, 64, seed=2), gap=16)
    write_seq(root / "caltech" / "set07" / "V000.seq", frames(20, 48, 64, seed=3))
    return sample_of("kitticaltech-10-1", {"train": 5, "test": 3}, (3, 128, 160))
