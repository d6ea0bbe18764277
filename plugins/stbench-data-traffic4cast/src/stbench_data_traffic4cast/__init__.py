"""stbench dataset plugin: Traffic4Cast 2021 traffic movies (PredBench's 9 -> 3 setting), streamed from HDF5."""
from stbench import DatasetSpec, hookimpl, lazy, lazy_exports

FOLDER = "traffic4cast"
CROP = (128, 112)  # (H, W) centre crop of the 495x436 city grid, as PredBench
CHANNELS = 8
STRIDE = 10  # frames between clip starts inside a day file
TEST_EVERY = 9  # without annotation lists: every 9th day file (sorted) is a test day

LAYOUT = f"""Traffic4Cast 2021 ({FOLDER}/ under the data root; source: github.com/iarai/NeurIPS2021-traffic4cast,
the core-competition training data), day files in the official layout:
  {FOLDER}/<CITY>/training/<YYYY-MM-DD>_<CITY>_8ch.h5   HDF5 dataset 'array' (288, 495, 436, 8) uint8:
      288 five-minute bins of one day; channels = volume and mean speed for 4 headings
  {FOLDER}/annotations/{{train,val,test}}.json   optional: JSON lists of day files (paths relative to {FOLDER}/),
      PredBench's split (35,840 train and 4,508 test clips = 1,280 and 161 day files)
Without annotation lists the sorted day files are split deterministically: every {TEST_EVERY}th is a test day
(val = test), the rest train. Each day gives clips of 12 frames starting every {STRIDE} frames
(starts 0, {STRIDE}, ... < 288 - 12: 28 per day), centre-cropped to {CROP[0]}x{CROP[1]}; values / 255 for the model,
native 0..255 for metrics (per-pixel MSE/MAE, as PredBench's spatial_norm)."""


HINT = ("get the Traffic4Cast 2021 core-competition training data (github.com/iarai/NeurIPS2021-traffic4cast), "
        "then run 'stbench data check traffic4cast-9-3' (it prints the expected layout)")


SPEC = DatasetSpec(
    name="traffic4cast",
    shape=(CHANNELS,) + CROP,
    open=lazy("stbench_data_traffic4cast.reader:open_traffic4cast"),
    max_length=287,
    layout=LAYOUT,
    canonical_tasks=("traffic4cast-9-3",),
    value_range=(0.0, 255.0),
    mean=0.0,
    std=255.0,
    default_metrics=("mse", "mae", "rmse", "ssim", "psnr"),
    metric_options={"spatial_norm": True},
    check=lazy("stbench_data_traffic4cast.reader:check_traffic4cast"),
    description="Traffic4Cast 2021: 8-channel traffic volume/speed movies, 128x112 centre crop, 5-minute frames",
    validation=0.1,  # PredBench's val annotation is its test set: 10% of the training clips instead
    sample_data=lazy("stbench_data_traffic4cast.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("_h5py", "day_files", "frame_count", "clip_offsets", "Traffic4CastClips", "open_traffic4cast",
               "check_traffic4cast"),
})
