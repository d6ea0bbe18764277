"""A tiny BridgeData v1 (JPEG trajectories and PredBench-style JSON split lists), for tests: core's dataset
contract test and this plugin's."""
from pathlib import Path

import numpy as np

from stbench import SampleData
from stbench_data_common.testing import sample_of, write_image, write_split_lists

GROUP = "berkeley/toykitchen1/put_pan_in_sink/2021-06-08_19-38-00/raw/traj_group0"
# trajectory -> (frames, height, width, split); traj1 is too short for a 12-frame clip, traj2 is stored at 240x320
TRAJECTORIES = {"traj0/images0": (14, 120, 160, "train"), "traj1/images1": (8, 120, 160, "train"),
                "traj2/images0": (13, 240, 320, "train"), "traj3/images2": (12, 120, 160, "val"),
                "traj4/images0": (20, 120, 160, "test"), "traj5/images1": (16, 120, 160, "test")}


def frame(t, height, width):
    """Red falls from top to bottom, green encodes the frame number, blue rises from left to right (smooth: JPEG
    keeps it within a few levels)."""
    rows, cols = np.mgrid[0:height, 0:width]
    red = 230 - 150 * rows / height
    green = np.full((height, width), 30.0 + 9 * t)
    blue = 20 + 60 * cols / width
    return np.clip(np.stack([red, green, blue], -1), 0, 255).round().astype(np.uint8)


def write_root(root, lists=True):
    """The trajectories under ``root/bridge_data_v1`` and, with ``lists``, the three split lists."""
    root = Path(root)
    notes = {split: {} for split in ("train", "val", "test")}
    for name, (count, height, width, split) in TRAJECTORIES.items():
        folder = f"{GROUP}/{name}"
        for t in range(count):
            write_image(root / "bridge_data_v1" / folder / f"im_{t}.jpg", frame(t, height, width), quality=95)
        notes[split][folder] = count
    if lists:
        write_split_lists(root, "bridgedata", notes)
    return root


def make_sample(root) -> SampleData:
    """bridgedata-2-10: 2 train clips (traj1's 8 frames are dropped, as PredBench does), 1 val, 2 test."""
    write_root(root)
    return sample_of("bridgedata-2-10", {"train": 2, "val": 1, "test": 2}, (3, 120, 160),
                     "train: all frames of the 3 trajectories in bridgedata_train.json exist")
