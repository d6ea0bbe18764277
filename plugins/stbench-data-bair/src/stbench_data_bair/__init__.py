"""stbench dataset plugin: BAIR robot pushing as PredBench stores it (one .npy array of videos per split)."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "bair"
SIZE = 64
MAX_LENGTH = 30  # BAIR videos hold 30 frames

SOURCE = ("http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar (softmotion30_44k TFRecords, "
          "the image_aux1 stream, converted to arrays)")
LAYOUT = f"""BAIR robot pushing ({FOLDER}/ under the data root), as PredBench (OpenEarthLab/PredBench) stores it:
  {FOLDER}/train.npy, {FOLDER}/test.npy     videos [N, 30, 64, 64, 3] uint8 RGB (N, T, H, W, C)
Source: {SOURCE}. Expected: 38,937 train / 256 test videos (UniSTD Table 1; PredBench keeps the rest of the
43,264 training videos as val.npy, which stbench does not need).
Clips: one per video, as PredBench's SampleFrames: at a random offset for training, at the centre
(offset (30 - clip length + 1) // 2) for testing. Frames resized to 64x64 (bilinear) when stored otherwise,
/255 -> [0, 1]."""
HINT = (f"expected {FOLDER}/train.npy and {FOLDER}/test.npy of shape (N, T, 64, 64, 3); "
        + fetch_hint(SOURCE, "bair-2-10"))


SPEC = video_spec(
    name="bair",
    shape=(3, SIZE, SIZE),
    open=lazy("stbench_data_bair.reader:open_bair"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("bair-2-10",),
    description="BAIR robot pushing: a robot arm moving objects, RGB 64x64",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_bair.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("BairClips", "read_clip", "open_bair"),
})
