"""A tiny nuScenes: front-camera JPEGs in the official samples/ + sweeps/ layout with PredBench-style JSON lists,
for tests: core's dataset contract test and this plugin's."""
from pathlib import Path

import numpy as np

from stbench import SampleData
from stbench_data_common.testing import sample_of, write_image, write_split_lists

HEIGHT, WIDTH = 90, 160  # the made frames keep nuScenes' 900x1600 aspect at a tenth of the size
LOGS = {  # log -> (frames, split); clip starts range(0, frames - 20, 4)
    "n008-2018-08-01-15-16-36-0400": (30, "train"),  # starts 0, 4, 8
    "n015-2018-07-18-11-07-57+0800": (20, "train"),  # exactly 20 frames: no clip, as PredBench
    "n008-2018-08-28-16-43-51-0400": (25, "train"),  # starts 0, 4
    "n015-2018-07-27-11-24-31+0800": (24, "val"),  # start 0
    "n008-2018-09-18-13-10-39-0400": (29, "test"),  # starts 0, 4, 8
}


def frame(t):
    """Red falls from top to bottom, green encodes the frame number, blue rises linearly from left to right."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([225 - 150 * rows / HEIGHT, np.full((HEIGHT, WIDTH), 20.0 + 7 * t), 20 + 200 * cols / WIDTH], -1)
    return np.clip(rgb, 0, 255).round().astype(np.uint8)


def frame_path(log, t):
    kind = "samples" if t % 6 == 0 else "sweeps"  # a key frame every 6 frames (2 Hz of 12 Hz)
    return f"{kind}/CAM_FRONT/{log}__CAM_FRONT__{1532661911362460 + 83333 * t}.jpg"


def write_root(root, lists=True):
    """The logs' frames under ``root/nuscenes`` and, with ``lists``, the three split lists."""
    root = Path(root)
    notes = {"train": {}, "val": {}, "test": {}}
    for log, (count, split) in LOGS.items():
        notes[split][log] = [frame_path(log, t) for t in range(count)]
        for t, name in enumerate(notes[split][log]):
            write_image(root / "nuscenes" / name, frame(t), quality=95)
    if lists:
        write_split_lists(root, "nuscenes", notes)
    return root


def make_sample(root) -> SampleData:
    """nuscenes-10-10: 5 train clips (3 + 0 + 2), 1 val, 3 test."""
    write_root(root)
    return sample_of("nuscenes-10-10", {"train": 5, "val": 1, "test": 3}, (3, 128, 160),
                     "train: all 75 frames of the 3 logs in nuscenes_train.json exist")
