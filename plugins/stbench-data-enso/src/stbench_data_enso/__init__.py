"""stbench dataset plugin: ICAR-ENSO CMIP sea-surface temperature anomalies (PredBench's 12 -> 14 months)."""
from stbench import DatasetSpec, hookimpl, lazy, lazy_exports

FOLDER, FILE, VARIABLE = "enso", "CMIP_train.nc", "sst"
DIMS = ("year", "month", "lat", "lon")
GRID = (24, 48)  # 5-degree grid: lat -55..60, lon 95E..330E (PredBench's / Earthformer's Pacific crop)
LON_RANGE = (95, 330)
LATITUDES = tuple(float(v) for v in range(-55, 61, 5))
LONGITUDES = tuple(float(v) for v in range(95, 331, 5))
# CMIP_train.nc stacks 15 CMIP6 runs of 151 rows, then 17 CMIP5 runs of 140 rows; a row holds 36 months
# starting at January of its year. Subsets (e.g. tests) may say other row counts in these global attributes.
CMIP6_MODELS, CMIP6_YEARS, CMIP5_MODELS, CMIP5_YEARS = 15, 151, 17, 140
YEARS_ATTRS = ("stbench_cmip6_years", "stbench_cmip5_years")
# PredBench's normalisation: (sst - SST_MIN) / (SST_MAX - SST_MIN), the extremes of both CMIP ensembles
SST_MIN, SST_MAX = -16.549121856689453, 10.198975563049316
NINO34_BOX = {"lat": (10, 13), "lon": (19, 30)}  # 5S-5N, 170W-120W on the grid above
NINO_WINDOW = 3  # months of the running mean of the Nino3.4 index

LAYOUT = f"""ICAR-ENSO ({FOLDER}/ under the data root; source: the Tianchi AI Earth ENSO challenge data,
tianchi.aliyun.com/dataset/98942, enso_round1_train_20210201, as PredBench and Earthformer use it):
  {FOLDER}/{FILE}   variable '{VARIABLE}' (year 4645, month 36, lat 24, lon 72): monthly SST anomalies of
      15 CMIP6 runs x 151 rows then 17 CMIP5 runs x 140 rows; each row holds 36 months from its year
      ({FOLDER}/enso_round1_train_20210201/{FILE} is found too; CMIP_label.nc is not needed)
As PredBench: longitudes 95E..330E (48 of 72), each run's rows folded into one monthly series
(1,836 months per CMIP6 run, 1,704 per CMIP5 run); train = all CMIP6 runs + the first 15 CMIP5 runs,
val = CMIP5 run 16, test = CMIP5 run 17; clips start at every month (52,350 train and 1,679 test clips of
12+14 months). Values are min-max scaled with the CMIP extremes ({SST_MIN:.4f}..{SST_MAX:.4f} degC);
metrics get degC."""

SPLIT_RUNS = {
    "train": [("cmip6", m) for m in range(CMIP6_MODELS)] + [("cmip5", m) for m in range(CMIP5_MODELS - 2)],
    "val": [("cmip5", CMIP5_MODELS - 2)],
    "test": [("cmip5", CMIP5_MODELS - 1)],
}


HINT = ("get enso_round1_train_20210201 from tianchi.aliyun.com/dataset/98942, then run "
        "'stbench data check enso-12-14' (it prints the expected layout)")


SPEC = DatasetSpec(
    name="enso",
    shape=(1,) + GRID,
    open=lazy("stbench_data_enso.reader:open_enso"),
    max_length=12 * CMIP5_YEARS + 24,
    layout=LAYOUT,
    canonical_tasks=("enso-12-14",),
    value_range=(SST_MIN, SST_MAX),
    mean=SST_MIN,
    std=SST_MAX - SST_MIN,
    # nino34 comes from a metric plugin; the engine skips a default metric that is not installed.
    default_metrics=("mse", "mae", "rmse", "nino34"),
    metric_options={"spatial_norm": True, "nino34_box": NINO34_BOX, "nino_window": NINO_WINDOW,
                    "latitudes": LATITUDES, "longitudes": LONGITUDES},
    check=lazy("stbench_data_enso.reader:check_enso"),
    splits=tuple(SPLIT_RUNS),
    validation="val",  # CMIP5 run 16, the official validation run
    image_origin="lower",  # latitudes ascend (-55 .. 60): row 0 is the southernmost
    description="ICAR-ENSO: monthly CMIP SST anomalies, Pacific 24x48 (5 deg)",
    sample_data=lazy("stbench_data_enso.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("_xarray", "data_file", "_damaged", "open_sst", "fold_rows", "run_series", "EnsoClips", "load_split",
               "open_enso", "check_enso"),
})
