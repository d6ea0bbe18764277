"""A tiny Human3.6M in OpenSTL's layout (JPEG frames + clip lists), for tests: core's dataset contract test and
this plugin's."""
from pathlib import Path

from stbench import SampleData
from stbench_data_common.testing import frames, sample_of, write_image

VIDEOS = {"train": ["S1_Walking.54138969_", "S5_Eating.55011271_"], "test": ["S9_Posing.58860488_"]}
STARTS = {"train": [1, 6, 26], "test": [1, 11, 16]}


def write_human(root, size=48):
    """Frames 1, 6, 11, ... 91 of each video (the camera frames OpenSTL keeps), and the two lists."""
    base = Path(root) / "human"
    for split, videos in VIDEOS.items():
        lines = []
        for index, prefix in enumerate(videos):
            for number, frame in zip(range(1, 92, 5), frames(19, size, size, seed=index)):
                write_image(base / "images" / f"{prefix}{number:06d}.jpg", frame)
            lines += [f"images/{prefix},{start},{start + 70}" for start in STARTS[split]]
        (base / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_sample(root) -> SampleData:
    """Two training videos and one test video, three clips each (human-4-4: 6 train, 3 test clips)."""
    write_human(root)
    return sample_of("human-4-4", {"train": 6, "test": 3}, (3, 256, 256), "test: all 24 frames named by test.txt exist")
