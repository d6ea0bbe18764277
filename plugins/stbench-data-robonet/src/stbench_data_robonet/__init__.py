"""stbench dataset plugin: RoboNet (HDF5 trajectories of seven robot platforms) with PredBench's splits."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "robonet/hdf5"  # the download's hdf5/ folder (PredBench: data_root = 'data/robonet/hdf5')
ANNOTATIONS = "annotations/robonet"  # PredBench's data/annotations/robonet/
INDEX = ".stbench-metadata.json"  # frame counts and cameras read from the files, kept beside them
SPLITS = ("train", "val", "test")
HEIGHT, WIDTH = 120, 160
MAX_LENGTH = 31  # the longest clip a task may ask for; shorter trajectories are dropped per task
TEST_CAMERA_SEED = 42  # PredBench's randomness seed; val and test clips use one randomly chosen camera each

SOURCE = ("https://github.com/SudeepDasari/RoboNet/wiki/Getting-Started (the robonet_v3 download: one .hdf5 file per "
          "trajectory in its hdf5/ folder)")
SPLIT_SOURCE = ("github.com/OpenEarthLab/PredBench (data/annotations/robonet/robonet_{train,val,test}.json, copied to "
                "<data-root>/annotations/robonet/)")
LAYOUT = f"""RoboNet trajectories ({FOLDER}/ under the data root, the download's hdf5/ folder as shipped) and
PredBench's split lists (annotations/robonet/), laid out as PredBench's data/ folder:
  {FOLDER}/<robot>_traj<N>.hdf5    one trajectory: env/cam<k>_video/frames (an MP4 stream, attrs T, image_format) or
      env/cam<k>_video/frame<t> (JPEG), env attrs n_cams and cam_encoding; frames of every camera of the robot
  annotations/robonet/robonet_train.json, robonet_val.json, robonet_test.json    JSON lists of file names
Source: {SOURCE}. Split lists: {SPLIT_SOURCE}.
PredBench's lists hold 16,217 val and 256 test files. The first open of a split reads every listed file's frame
count and cameras (a few ms a file) and keeps them in {FOLDER}/{INDEX} (when the folder is writable).
Clips as PredBench: one per trajectory that holds the clip; training clips from camera 0 at a random start each
time they are read, val and test clips from one camera per file drawn once with random.Random({TEST_CAMERA_SEED}) in
list order, at the centre start int((n - length + 1) / 2). Frames resized to {HEIGHT}x{WIDTH} (OpenCV INTER_LINEAR
on uint8, as mmcv), RGB, /255 -> [0, 1]."""
HINT = fetch_hint(SOURCE, "robonet-2-10")
SPLIT_HINT = fetch_hint(SPLIT_SOURCE, "robonet-2-10")


SPEC = video_spec(
    name="robonet",
    shape=(3, HEIGHT, WIDTH),
    open=lazy("stbench_data_robonet.reader:open_robonet"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("robonet-2-10",),
    default_metrics=("mse", "mae", "rmse", "ssim", "psnr"),
    splits=SPLITS,
    validation="val",
    extra_checks=[lazy("stbench_data_robonet.reader:check_files"),
                  lazy("stbench_data_robonet.reader:check_val")],
    description="RoboNet: seven robot platforms pushing and grasping, RGB 120x160 (PredBench's splits), 2 -> 10",
    sample_data=lazy("stbench_data_robonet.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch, h5py, PyAV) load when the data is opened, so registering imports none of them
__getattr__ = lazy_exports(__name__, {
    "reader": ("Trajectory", "RoboNetClips", "listed_files", "metadata", "read_metadata", "read_frames",
               "open_robonet", "check_files", "check_val"),
})
