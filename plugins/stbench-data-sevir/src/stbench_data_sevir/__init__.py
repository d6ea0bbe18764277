"""stbench dataset plugin: SEVIR vertically integrated liquid (VIL) radar, streamed from HDF5."""
from stbench import DatasetSpec, hookimpl, lazy, lazy_exports

FOLDER = "sevir/processed"
FILES = {"train": "vil_training.h5", "test": "vil_testing.h5"}
SIZE = 384
OBSERVED, FUTURE = 13, 12
CSI_THRESHOLDS = (16, 74, 133, 160, 181, 219)

LAYOUT = f"""SEVIR VIL ({FOLDER}/ under the data root), the 13->12 frame split OpenSTL reads
(raw data: registry.opendata.aws/sevir; OpenSTL's openstl/datasets/dataloader_sevir.py):
  {FOLDER}/{FILES['train']}   HDF5 datasets IN (N, 384, 384, 13) and OUT (N, 384, 384, 12), uint8 VIL 0..255
  {FOLDER}/{FILES['test']}    same layout (USTEP: 35,718 training and 12,159 test sequences)
Frames are 5 minutes apart; IN holds the 13 observed frames, OUT the 12 to predict (time is the last axis).
Models see VIL / 255 (in [0, 1]); metrics get native VIL 0..255 (CSI thresholds {', '.join(map(str, CSI_THRESHOLDS))});
'val' is the test file, as in OpenSTL."""


HINT = ("get the SEVIR VIL data from registry.opendata.aws/sevir and make the IN / OUT files with OpenSTL's "
        "SEVIR preparation, then run 'stbench data check sevir-13-12' (it prints the expected layout)")


SPEC = DatasetSpec(
    name="sevir",
    shape=(1, SIZE, SIZE),
    open=lazy("stbench_data_sevir.reader:open_sevir"),
    max_length=OBSERVED + FUTURE,
    layout=LAYOUT,
    canonical_tasks=("sevir-13-12",),
    value_range=(0.0, 255.0),
    mean=0.0,
    std=255.0,
    # csi comes from a metric plugin; the engine skips a default metric that is not installed.
    default_metrics=("mse", "mae", "rmse", "csi"),
    metric_options={"spatial_norm": True, "csi_thresholds": CSI_THRESHOLDS},
    check=lazy("stbench_data_sevir.reader:check_sevir"),
    description="SEVIR: radar vertically integrated liquid, 384x384, 5-minute frames",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_sevir.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("_h5py", "inspect", "window", "SevirClips", "open_sevir", "check_sevir"),
})
