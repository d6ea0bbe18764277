"""stbench dataset plugin: TaxiBJ crowd flows (inflow / outflow on a 32x32 grid of Beijing)."""
from stbench import DatasetSpec, hookimpl, lazy, lazy_exports

FOLDER = "taxibj"
FILE = "dataset.npz"
SHAPE = (2, 32, 32)
SPLIT_ARRAYS = {"train": ("X_train", "Y_train"), "test": ("X_test", "Y_test")}

LAYOUT = f"""TaxiBJ ({FOLDER}/ under the data root), the file OpenSTL distributes
(github.com/chengtan9907/OpenSTL, docs/en/get_started.md: tools/prepare_data/download_taxibj.sh):
  {FOLDER}/{FILE}   arrays X_train (20461, 4, 2, 32, 32), Y_train (20461, 4, 2, 32, 32),
                    X_test (500, 4, 2, 32, 32), Y_test (500, 4, 2, 32, 32); flows scaled to [-1, 1]
Each sample is 4 observed + 4 future half-hour frames (inflow, outflow). Stored values are mapped to
[0, 1] by (v + 1) / 2, as OpenSTL does before its metrics; 'val' is the test set, as in OpenSTL."""


SPEC = DatasetSpec(
    name="taxibj",
    shape=SHAPE,
    open=lazy("stbench_data_taxibj.reader:open_taxibj"),
    max_length=8,
    layout=LAYOUT,
    canonical_tasks=("taxibj-4-4",),
    value_range=(0.0, 1.0),
    default_metrics=("mse", "mae", "ssim", "psnr"),
    train_defaults={"paper": {"epochs": 50, "batch_size": 16}},
    check=lazy("stbench_data_taxibj.reader:check_taxibj"),
    description="TaxiBJ: taxi inflow/outflow of Beijing, 32x32 grid, half-hour frames",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_taxibj.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("load_split", "window", "TaxiBJClips", "open_taxibj", "check_taxibj"),
})
