"""A tiny KTH as JPEG frame folders (one of its two real layouts), for tests: core's dataset contract test and
this plugin's."""
from pathlib import Path

from stbench import SampleData
from stbench_data_common.testing import frames, sample_of, write_image

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")


def write_video(root, action, person, count=35, first=1, size=(15, 20), skip=()):
    """``kth/<action>/person<NN>_<action>_d1_uncomp/image_<n>.jpg``: ``count`` frames numbered from ``first``,
    leaving out the numbers in ``skip``."""
    folder = Path(root) / "kth" / action / f"person{person:02d}_{action}_d1_uncomp"
    number = first
    for frame in frames(count, *size, seed=person * 7 + len(action)):
        while number in skip:
            number += 1
        write_image(folder / f"image_{number:04d}.jpg", frame)
        number += 1
    return folder


def make_sample(root) -> SampleData:
    """One 35-frame video per action for person 01 (train) and person 17 (test).

    kth-10-20 takes 30-frame windows: one per video of the slow actions (stride 30), two of jogging / running
    (stride 3: windows ending at frames 35 and 32), so 4 x 1 + 2 x 2 = 8 clips per split.
    """
    for action in ACTIONS:
        for person in (1, 17):
            write_video(root, action, person)
    return sample_of("kth-10-20", {"train": 8, "test": 8}, (1, 128, 128), "test: 16 clips of 20 frames")
