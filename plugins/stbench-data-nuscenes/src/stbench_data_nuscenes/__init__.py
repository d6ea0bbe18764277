"""stbench dataset plugin: nuScenes front camera (CAM_FRONT key frames and sweeps, 12 Hz) with PredBench's splits."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "nuscenes"  # PredBench: data_root = 'data/nuscenes'
ANNOTATIONS = "annotations/nuscenes"  # PredBench's data/annotations/nuscenes/
SPLITS = ("train", "val", "test")
STRIDE = 4  # frames between clip starts in one log (PredBench's stride_train / stride_val / stride_test)
RESIZED = (128, 228)  # training frames: 900x1600 -> 128x228, then the centre 128x160
HEIGHT, WIDTH = 128, 160
MAX_LENGTH = 120  # the longest clip a task may ask for (10 s at 12 Hz); the logs hold hundreds of frames

SOURCE = ("https://www.nuscenes.org/nuscenes#download (Full dataset v1.0, Trainval and Test: the camera blobs, whose "
          "samples/CAM_FRONT and sweeps/CAM_FRONT folders are needed)")
SPLIT_SOURCE = ("github.com/OpenEarthLab/PredBench (data/annotations/nuscenes/nuscenes_{train,val,test}.json, copied "
                "to <data-root>/annotations/nuscenes/)")
LAYOUT = f"""nuScenes front-camera frames ({FOLDER}/ under the data root, as the official blobs extract) and PredBench's
split lists (annotations/nuscenes/), laid out as PredBench's data/ folder:
  {FOLDER}/samples/CAM_FRONT/<log>__CAM_FRONT__<timestamp>.jpg   key frames (2 Hz), 1600x900 JPEG
  {FOLDER}/sweeps/CAM_FRONT/<log>__CAM_FRONT__<timestamp>.jpg    the frames between them (12 Hz in all)
  annotations/nuscenes/nuscenes_train.json, nuscenes_val.json, nuscenes_test.json
      JSON objects {{"<log>": ["samples/CAM_FRONT/....jpg", "sweeps/CAM_FRONT/....jpg", ...], ...}}: every
      front-camera frame of a log in time order, paths under {FOLDER}/
Source: {SOURCE}. Split lists: {SPLIT_SOURCE}.
Counts (PredBench's lists): val 7 logs, 4,658 clips; test 5 logs, 3,436 clips (nuscenes-10-10).
Clips as PredBench: 20 consecutive frames of one log starting every {STRIDE} frames (starts 0, {STRIDE}, ... <
frames - 20). Training frames are resized to {RESIZED[0]}x{RESIZED[1]} and centre-cropped to {HEIGHT}x{WIDTH}; val
and test frames are resized to {HEIGHT}x{WIDTH} without a crop, as PredBench's val/test pipelines do. Resizes are
OpenCV INTER_LINEAR on uint8 (as mmcv); RGB, /255 -> [0, 1]."""
HINT = fetch_hint(SOURCE, "nuscenes-10-10")
SPLIT_HINT = fetch_hint(SPLIT_SOURCE, "nuscenes-10-10")


SPEC = video_spec(
    name="nuscenes",
    shape=(3, HEIGHT, WIDTH),
    open=lazy("stbench_data_nuscenes.reader:open_nuscenes"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("nuscenes-10-10",),
    default_metrics=("mse", "mae", "rmse", "ssim", "psnr"),
    splits=SPLITS,
    validation="val",
    extra_checks=[lazy("stbench_data_nuscenes.reader:check_frames"),
                  lazy("stbench_data_nuscenes.reader:check_val")],
    description="nuScenes front camera: driving in Boston and Singapore, RGB 128x160 at 12 Hz (PredBench), 10 -> 10",
    sample_data=lazy("stbench_data_nuscenes.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch, PIL) load when the data is opened, so registering imports none of them
__getattr__ = lazy_exports(__name__, {
    "reader": ("logs", "clip_starts", "read_clip", "open_nuscenes", "check_frames", "check_val"),
})
