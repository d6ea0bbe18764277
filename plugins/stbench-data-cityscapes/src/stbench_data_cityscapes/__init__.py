"""stbench dataset plugin: Cityscapes sequences as PredBench reads them (MCVD's 128x128 HDF5 shards)."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "cityscapes/Cityscapes128_h5"
SIZE = 128
TRAIN_STRIDE = 5  # PredBench: training clips every 5 frames; test: one clip per sequence, from its first frame
MAX_LENGTH = 30  # a Cityscapes sequence snippet holds 30 frames

SOURCE = ("https://www.cityscapes-dataset.com (leftImg8bit_sequence_trainvaltest.zip), converted by MCVD's "
          "datasets/cityscapes_convert.py (voletiv/mcvd-pytorch) --image_size 128")
LAYOUT = f"""Cityscapes sequences ({FOLDER}/ under the data root), the HDF5 shards PredBench reads:
  {FOLDER}/train/shard_0001.hdf5, {FOLDER}/test/shard_0001.hdf5   (every *.hdf5 / *.h5 there is read)
  inside a shard: len/<k> = frames of sequence k; <k>/<i> = frame i, uint8 [128, 128, 3] RGB (centre-cropped
  square, Lanczos-resized by the converter)
Source: {SOURCE}. Expected: 2,975 train / 1,525 test sequences of 30 frames; PredBench's counts (UniSTD
Table 1) are 8,925 train / 1,525 test clips.
Clips: training windows start every 5 frames (0, 5, ... while the clip fits); each test sequence gives one clip
from its first frame. Frames resized to 128x128 (bilinear) when stored otherwise, /255 -> [0, 1]."""
HINT = f"expected {FOLDER}/{{train,test}}/shard_0001.hdf5; " + fetch_hint(SOURCE, "cityscapes-2-5")


SPEC = video_spec(
    name="cityscapes",
    shape=(3, SIZE, SIZE),
    open=lazy("stbench_data_cityscapes.reader:open_cityscapes"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("cityscapes-2-5",),
    description="Cityscapes street-scene sequences, RGB 128x128 at 17 fps",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_cityscapes.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("shard_paths", "index_sequences", "read_clip", "open_cityscapes"),
})
