"""kitticaltech, declared without torch: train on KITTI (PredNet's hickle files), test on Caltech Pedestrian (.seq), as OpenSTL does."""
from stbench import lazy
from stbench_data_common import fetch_hint, video_spec

HEIGHT, WIDTH = 128, 160
KITTI, CALTECH, CACHE = "kitti_hkl", "caltech", "kitticaltech_npy"
CALTECH_EVERY = 3  # Caltech is 30 fps; every 3rd frame (the 3rd, 6th, ...) matches KITTI's 10 fps
MAX_LENGTH = 30  # three seconds at 10 fps; shorter videos simply yield no clip

SOURCE = ("KITTI: PredNet's kitti_data.zip (coxlab/prednet, process_kitti.py); Caltech Pedestrian: "
          "https://data.caltech.edu/records/f6rph-90m20 (data_and_labels.zip, the Test part: set06-set10)")
LAYOUT = f"""KITTI -> Caltech Pedestrian (under the data root), as OpenSTL reads it:
  {KITTI}/X_train.hkl          KITTI frames [N, 128, 160, 3] uint8 (hickle / HDF5), PredNet's preprocessing
  {KITTI}/sources_train.hkl    the video (drive) name of each frame, N strings
  {CALTECH}/set*/V*.seq          Caltech Pedestrian test videos (Norpix .seq, 640x480 JPEG frames, 30 fps)
or OpenSTL's cached arrays instead of either part:
  {CACHE}/train_data.npy, train_idx.npy, test_data.npy, test_idx.npy
                               frames [N, 128, 160, 3] (uint8, or float in [0, 1]) and clip start indices
Source: {SOURCE}.
Splits: train = KITTI (PredNet's train drives), test = Caltech set06-set10. Expected counts (kitticaltech-10-1):
3,160 train / 3,095 test clips (USTEP Table I).
Caltech frames: every 3rd frame, resized to height 128 keeping the aspect ratio and centre-cropped to 160 wide
with scikit-image's resize, exactly as OpenSTL (PredNet's process_im). All frames RGB /255 -> [0, 1] (OpenSTL
decoded Caltech with OpenCV, i.e. BGR, against RGB KITTI; stbench keeps both RGB). Clips: windows taken backwards
from each video's end, one every clip length, never across two videos. The cached clip starts were made for
11-frame clips, so the cache serves tasks of at most that length. 'stbench data prepare kitticaltech-10-1 --from
DOWNLOAD' collects set06-set10 from Caltech's set*.tar files (or a folder / zip / tar of them)."""
HINT = fetch_hint(SOURCE, "kitticaltech-10-1", prepare=True)


SPEC = video_spec(
    name="kitticaltech",
    shape=(3, HEIGHT, WIDTH),
    open=lazy("stbench_data_kitticaltech.kitticaltech_reader:open_kitticaltech"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("kitticaltech-10-1",),
    prepare=lazy("stbench_data_kitticaltech.prepare:prepare_kitticaltech"),
    description="KITTI driving videos for training, Caltech Pedestrian for testing; RGB 128x160 at 10 fps",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_kitticaltech.sample:make_kitticaltech_sample"),
)

