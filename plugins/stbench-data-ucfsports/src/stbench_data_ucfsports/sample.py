"""A tiny UCF Sports in STRPM's layout (PNG frames + clip lists), for tests: core's dataset contract test and this
plugin's."""
from pathlib import Path

from stbench import SampleData
from stbench_data_common.testing import frames, sample_of, write_image

PREFIX = "E:/datasets/UCF-sport/ucf_sports_actions/ucf_action_images/"
VIDEOS = {"train": ["Diving-Side/001", "Lifting/002"], "test": ["Walk-Front/019"]}
LISTS = {"train": [f"{PREFIX}Diving-Side/001/,1", f"{PREFIX}Diving-Side/001/,6", f"{PREFIX}Lifting/002/,2",
                   "Lifting/002/,5"],
         "test": [f"{PREFIX}Walk-Front/019/,3", f"{PREFIX}Walk-Front/019/,1"]}


def write_ucf(root, size=(24, 36), count=15):
    """Frames 1..count of each video and STRPM-style lists (absolute Windows paths, as STRPM ships them)."""
    base = Path(root) / "ucfsports"
    for split, videos in VIDEOS.items():
        for index, video in enumerate(videos):
            for number, frame in enumerate(frames(count, *size, seed=index), start=1):
                write_image(base / "ucf_action_images" / video / f"{number}.png", frame)
        (base / f"{split}.txt").write_text("\n".join(LISTS[split]) + "\n")
    return root


def make_sample(root) -> SampleData:
    """The lists' clips: 4 for training, 2 for testing (ucfsports-4-1)."""
    write_ucf(root)
    return sample_of("ucfsports-4-1", {"train": 4, "test": 2}, (3, 480, 720),
                     "test: all 10 frames named by test.txt exist")
