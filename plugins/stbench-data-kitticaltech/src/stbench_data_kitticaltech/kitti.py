"""kitti: KITTI raw drives as PNG frame folders, with PredBench's splits, strides and resizing (kitti-10-10)."""
import re

from stbench import lazy
from stbench_data_common import fetch_hint, video_spec

FOLDER = "kitti"
HEIGHT, WIDTH = 128, 160
RESIZED = (128, 424)  # PredBench: Resize to 424x128 ignoring the aspect ratio, then centre-crop 160x128
STRIDE = {"train": 4, "test": 1}
MAX_LENGTH = 30
FRAME = re.compile(r"^(\d+)\.png$", re.IGNORECASE)
CAMERA = re.compile(r"^image_0[0-3]$")  # a raw drive's cameras: 00 / 01 grey pair, 02 / 03 colour pair
COLOUR_CAMERA = "image_02"  # the left colour camera, the one the published KITTI prediction setups read

SOURCE = "https://www.cvlibs.net/datasets/kitti/raw_data.php (image_02 of the raw drives, 10 fps)"
LAYOUT = f"""KITTI ({FOLDER}/ under the data root), as PredBench (OpenEarthLab/PredBench) lays it out:
  {FOLDER}/train/<drive>/<i>.png     frames of one drive numbered from 0 (KITTI's 0000000000.png names work too);
  {FOLDER}/test/<drive>/<i>.png      <drive> may be nested, e.g. 2011_09_26_drive_0001_sync/image_02/data
Raw drives may be unzipped there as they ship (image_00 .. image_03): only {COLOUR_CAMERA} (left colour camera)
is read; the grey pair (image_00, image_01) and the right colour camera (image_03) are skipped.
Source: {SOURCE}. PredBench's annotation files (kitti_*.json: folder -> frame count) are not needed: the
frames are counted. Splits: the drives you place under train/ and test/ (PredBench's lists); expected counts
for kitti-10-10: 9,209 train / 2,198 test clips (UniSTD Table 1).
Clips: starts 0, s, 2s, ... < frames - clip length (s = 4 train, 1 test; PredBench leaves each drive's last
window out). Frames: RGB, resized to 424x128 (bilinear, no antialias, as mmcv / OpenCV), centre crop 160x128,
/255 -> [0, 1]."""
HINT = fetch_hint(SOURCE, "kitti-10-10")


SPEC = video_spec(
    name="kitti",
    shape=(3, HEIGHT, WIDTH),
    open=lazy("stbench_data_kitticaltech.kitti_reader:open_kitti"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("kitti-10-10",),
    hparams_like="kitticaltech",
    description="KITTI raw driving videos, RGB 128x160 at 10 fps (PredBench protocol)",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_kitticaltech.sample:make_kitti_sample"),
)

