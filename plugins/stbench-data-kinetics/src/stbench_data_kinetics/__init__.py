"""stbench dataset plugin: Kinetics-400 (10-second YouTube action clips) as OpenSTL samples and normalises them."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "kinetics400"  # OpenSTL: data_root/kinetics400
SPLITS = ("train", "val", "test")
SIZE = 256  # OpenSTL's in_shape [4, 3, 256, 256]: shorter side resized to 256, centre 256x256
SAMPLE_RATE = 2  # OpenSTL's frame_sample_rate
MIN_BYTES = 1024  # OpenSTL skips (and replaces) video files under 1 KB
MAX_LENGTH = 150  # the longest clip a task may ask for (10 s at 30 fps, every second frame); shorter videos pad
MEAN = (0.485, 0.456, 0.406)  # OpenSTL's Normalize (ImageNet statistics), on frames / 255
STD = (0.229, 0.224, 0.225)

SOURCE = ("https://github.com/cvdfoundation/kinetics-dataset (k400_downloader.sh and k400_extractor.sh, as OpenSTL's "
          "tools/prepare_data/download_kinetics.sh runs them)")
LAYOUT = f"""Kinetics-400 ({FOLDER}/ under the data root), as the CVDF download extracts it and OpenSTL reads it:
  {FOLDER}/annotations/train.csv, val.csv, test.csv    label,youtube_id,time_start,time_end,split (one row a video)
  {FOLDER}/<split>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4
      <split> is the CSV's split column (train, val, test); {FOLDER}/replacement/ is not read, as in OpenSTL
Source: {SOURCE}. OpenSTL's docs count 246,534 train and 39,805 test videos; YouTube removals make every download
smaller, and stbench uses the listed videos that are present (files under 1 KB are skipped, as OpenSTL skips them).
Clips as OpenSTL's KineticsDataset (frame_sample_rate {SAMPLE_RATE}): test clips are frames 0, 2, 4, ... of the video
(the last repeated when it is short); training and val clips are length points spread over a random window of
2 x length frames (numpy linspace, truncated), or over the whole video when it is shorter. Frames: shorter side
resized to {SIZE} (OpenCV INTER_LINEAR on uint8), centre {SIZE}x{SIZE} crop (offsets rounded as Python's round), RGB,
/255 -> [0, 1], then normalised with the ImageNet mean {MEAN} and std {STD}."""
HINT = fetch_hint(SOURCE, "kinetics-4-4")


SPEC = video_spec(
    name="kinetics",
    shape=(3, SIZE, SIZE),
    open=lazy("stbench_data_kinetics.reader:open_kinetics"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("kinetics-4-4",),
    mean=MEAN,
    std=STD,
    default_metrics=("mse", "mae", "ssim", "psnr"),
    splits=SPLITS,
    validation="val",
    train_defaults={"paper": {"epochs": 200}},  # OpenSTL: its kinetics configs set no epoch; the default is 200
    extra_checks=[lazy("stbench_data_kinetics.reader:check_videos"),
                  lazy("stbench_data_kinetics.reader:check_val")],
    description="Kinetics-400: human actions in YouTube videos, RGB 256x256, every second frame (OpenSTL), 4 -> 4",
    sample_data=lazy("stbench_data_kinetics.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch, PyAV) load when the data is opened, so registering imports none of them
__getattr__ = lazy_exports(__name__, {
    "reader": ("KineticsClips", "listed_videos", "training_indices", "evaluation_indices", "resized_size",
               "crop_offsets", "resize_and_crop", "open_kinetics", "check_videos", "check_val"),
})
