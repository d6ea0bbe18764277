"""stbench dataset plugin: BridgeData v1 (WidowX kitchen trajectories, raw JPEG frames) with PredBench's splits."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "bridge_data_v1"  # the download's own folder name (PredBench: data_root = 'data/bridge_data_v1')
ANNOTATIONS = "annotations/bridgedata"  # PredBench's data/annotations/bridgedata/
SPLITS = ("train", "val", "test")
HEIGHT, WIDTH = 120, 160
MAX_LENGTH = 39  # the longest trajectory PredBench's lists hold

SOURCE = ("https://rail-berkeley.github.io/bridgedata (the raw release of 640x480 JPEG trajectories; BridgeData V2's "
          "rail.eecs.berkeley.edu/datasets/bridge_release/data/demos_8_17.zip holds it as raw/bridge_data_v1/)")
SPLIT_SOURCE = ("github.com/OpenEarthLab/PredBench (data/annotations/bridgedata/bridgedata_{train,val,test}.json, "
                "copied to <data-root>/annotations/bridgedata/)")
LAYOUT = f"""BridgeData v1 raw frames ({FOLDER}/ under the data root) and PredBench's split lists
(annotations/bridgedata/), laid out as PredBench's data/ folder:
  {FOLDER}/<institution>/<scene>/<task>/<date>/raw/traj_group0/traj<N>/images<K>/im_<i>.jpg
      one folder per trajectory and camera, frames im_0.jpg .. im_<n-1>.jpg (640x480 RGB JPEG)
  annotations/bridgedata/bridgedata_train.json, bridgedata_val.json, bridgedata_test.json
      JSON objects {{"<folder under {FOLDER}/>": <frame count>, ...}}
Source: {SOURCE}. Split lists: {SPLIT_SOURCE}.
Counts (PredBench's lists): 31,775 train / 3,973 val / 3,971 test camera trajectories of 3..39 frames; with 12 frames
or more (bridgedata-2-10): 31,767 / 3,971 / 3,970 clips, one per trajectory.
Clips as PredBench's SampleFrames: a random start each time a training clip is read, the centre start
int((n - length + 1) / 2) for val and test. Frames resized to {HEIGHT}x{WIDTH} (OpenCV INTER_LINEAR on uint8, as mmcv),
RGB, /255 -> [0, 1]."""
HINT = fetch_hint(SOURCE, "bridgedata-2-10")
SPLIT_HINT = fetch_hint(SPLIT_SOURCE, "bridgedata-2-10")


SPEC = video_spec(
    name="bridgedata",
    shape=(3, HEIGHT, WIDTH),
    open=lazy("stbench_data_bridgedata.reader:open_bridgedata"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("bridgedata-2-10",),
    default_metrics=("mse", "mae", "rmse", "ssim", "psnr"),
    splits=SPLITS,
    validation="val",
    extra_checks=[lazy("stbench_data_bridgedata.reader:check_frames"),
                  lazy("stbench_data_bridgedata.reader:check_val")],
    description="BridgeData v1: a WidowX arm in toy kitchens, RGB 120x160 (PredBench's splits), 2 -> 10",
    sample_data=lazy("stbench_data_bridgedata.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch, PIL) load when the data is opened, so registering (and `stbench list`) imports none
__getattr__ = lazy_exports(__name__, {
    "reader": ("BridgeDataClips", "trajectories", "read_clip", "open_bridgedata", "check_frames", "check_val"),
})
