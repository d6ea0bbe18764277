"""stbench dataset plugin: Human3.6M as OpenSTL prepares it (256x256 JPEG frames + clip lists), streamed from disk."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "human"
SIZE = 256
STEP = 5  # every 5th camera frame (50 fps -> 10 fps)
# The STRPM / OpenSTL lists give windows of 70 camera frames (start, start + 70): 14 frames at step 5.
MAX_LENGTH = 14

SOURCE = ("http://vision.imar.ro/human3.6m (the visiondata.cis.upenn.edu/volumetric/h36m S*.tar image "
          "archives, as OpenSTL's tools/prepare_data/download_human3.6m.sh fetches them)")
LAYOUT = f"""Human3.6M ({FOLDER}/ under the data root), as OpenSTL prepares it:
  {FOLDER}/images/<subject>_<action>.<camera>_<NNNNNN>.jpg   every frame, resized to 256x256
  {FOLDER}/train.txt, {FOLDER}/test.txt                      one clip a line: '<prefix>,<start>[,<end>]', e.g.
                                                          'images/S1_Directions.54138969_,1276,1346'
Source: {SOURCE}; the lists come from STRPM (ZhengChang467/STRPM) via OpenSTL's tools/prepare_data/meta/human.
Splits: as the lists give them, windows drawn from every subject's videos (S1, S5-S9, S11 in both):
73,404 train / 8,582 test clips.
A clip is frames <start>, <start>+5, ... (step 5); RGB, resized to 256x256 (bicubic) when stored otherwise,
/255 -> [0, 1]. OpenSTL read the frames with OpenCV (BGR order) and augmented training clips with random
crops and rotations; stbench reads RGB and does not augment (MSE, MAE, SSIM and PSNR ignore channel order)."""
HINT = (f"expected {FOLDER}/images/*.jpg with {FOLDER}/train.txt and {FOLDER}/test.txt; "
        + fetch_hint(SOURCE, "human-4-4"))


SPEC = video_spec(
    name="human",
    shape=(3, SIZE, SIZE),
    open=lazy("stbench_data_human.reader:open_human"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("human-4-4",),
    train_defaults={"paper": {"epochs": 50}},
    extra_checks=[lazy("stbench_data_human.reader:check_frames")],
    description="Human3.6M: RGB 256x256 frames of people acting, 4 -> 4 at 10 fps",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_human.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("frame_name", "list_clips", "read_clip", "open_human", "check_frames"),
})
