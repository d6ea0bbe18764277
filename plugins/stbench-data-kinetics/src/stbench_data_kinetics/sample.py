"""A tiny Kinetics-400: MP4 videos and CSV lists in the CVDF / OpenSTL layout, for tests: core's dataset contract
test and this plugin's."""
from pathlib import Path

import av
import numpy as np

from stbench import SampleData
from stbench_data_common.testing import sample_of

HEADER = "label,youtube_id,time_start,time_end,split\n"
# youtube id -> (frames, height, width, split); 100x134 resizes to 256x343, whose centre crop starts at
# round(43.5) = 44 (Python rounds halves to even), not floor 43; 80x60 is portrait (341x256, top round(42.5) = 42)
VIDEOS = {"abc-DEF_123": (40, 100, 134, "train"), "shortClip01": (12, 48, 64, "train"),
          "notOnDisk00": (0, 0, 0, "train"), "tinyFile000": (0, 0, 0, "train"),
          "valVideo001": (20, 48, 64, "val"), "testVideo01": (30, 80, 60, "test"), "testShort01": (9, 48, 64, "test")}


def frame(t, height, width):
    """Red falls from top to bottom, green encodes the frame number, blue rises from left to right."""
    rows, cols = np.mgrid[0:height, 0:width]
    rgb = np.stack([225 - 150 * rows / height, np.full((height, width), 20.0 + 6 * t), 20 + 180 * cols / width], -1)
    return np.clip(rgb, 0, 255).round().astype(np.uint8)


def write_h264(path, frames):
    """An H.264 (yuv420p) MP4 like Kinetics' own, at quantiser 0 so a frame's number survives in its green mean."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"qp": "0"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def video_name(youtube_id, index):
    return f"{youtube_id}_{index * 10:06d}_{index * 10 + 10:06d}.mp4"


def write_root(root):
    """The videos under ``root/kinetics400/<split>`` (one missing, one under 1 KB) and the three CSV lists."""
    root = Path(root)
    base = root / "kinetics400"
    rows = {"train": [], "val": [], "test": []}
    for index, (youtube_id, (count, height, width, split)) in enumerate(VIDEOS.items()):
        rows[split].append(f"\"riding a bike\",{youtube_id},{index * 10},{index * 10 + 10},{split}\n")
        path = base / split / video_name(youtube_id, index)
        if youtube_id == "tinyFile000":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x00" * 500)  # under 1 KB: OpenSTL skips it
        elif count:
            write_h264(path, [frame(t, height, width) for t in range(count)])
    (base / "annotations").mkdir(parents=True)
    for split, lines in rows.items():
        (base / "annotations" / f"{split}.csv").write_text(HEADER + "".join(lines))
    (base / "replacement").mkdir()  # CVDF's replacements for damaged videos: not read, as in OpenSTL
    return root


def make_sample(root) -> SampleData:
    """kinetics-4-4: 2 train clips (a missing and an under-1-KB video are left out, as OpenSTL does), 1 val, 2 test."""
    write_root(root)
    return sample_of("kinetics-4-4", {"train": 2, "val": 1, "test": 2}, (3, 256, 256),
                     "train: 2 of the 4 videos in train.csv are in train/")
