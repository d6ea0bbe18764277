"""stbench dataset plugin: KTH Action, read from the official AVIs or OpenSTL's JPEG frame folders."""
import re

from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "kth"
SIZE = 128
# OpenSTL's KTH loader: clips of these actions are taken every clip length ...
ACTIONS = ("boxing", "handclapping", "handwaving", "walking")
# ... and of these fast ones every 3 frames.
FAST_ACTIONS = ("jogging", "running")
FAST_STRIDE = 3
PERSONS = {"train": range(1, 17), "test": range(17, 26)}
MAX_LENGTH = 50  # kth-10-40; the shortest KTH videos still hold a few 50-frame clips
VIDEO = re.compile(r"^person(\d+)_")
FRAME = re.compile(r"^image\D*(\d+)\.(jpe?g|png)$", re.IGNORECASE)

SOURCE = "https://www.csc.kth.se/cvap/actions/ (six zips of AVIs) or OpenSTL's kth_action.zip (JPEG frames)"
LAYOUT = f"""KTH Action ({FOLDER}/ under the data root), either source, per video:
  {FOLDER}/<action>/personNN_<action>_dN_uncomp.avi          the official AVIs (www.csc.kth.se/cvap/actions/,
                                                           one zip per action), read directly with PyAV
  {FOLDER}/<action>/personNN_<action>_dN_uncomp/image_NNNN.jpg   or OpenSTL's kth_action.zip frame folders
with <action> one of boxing, handclapping, handwaving, jogging, running, walking (all six folders).
'stbench data prepare kth-10-20 --from DOWNLOAD' sorts the six official zips (or a folder of them, or
kth_action.zip) into this layout. 25 persons x 6 actions x 4 scenarios (599 videos of 160x120, 25 fps).
Splits: persons 01-16 train, 17-25 test. Frames: channel 0, resized to 128x128 (bilinear), /255 -> [0, 1].
Clips: windows taken backwards from each video's end, every clip length for boxing / handclapping /
handwaving / walking and every 3 frames for jogging / running; a window never spans a gap in the numbering.
Expected counts: USTEP Table I 4,940 train / 3,030 test clips; UniSTD Table 1 (kth-10-10) 8,488 / 5,041."""
HINT = fetch_hint(SOURCE, "kth-10-20", prepare=True)
AVI = re.compile(r"^(person\d+_([a-z]+)_d\d+)(_uncomp)?\.avi$", re.IGNORECASE)


SPEC = video_spec(
    name="kth",
    shape=(1, SIZE, SIZE),
    open=lazy("stbench_data_kth.reader:open_kth"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("kth-10-20", "kth-10-40", "kth-10-10"),
    train_defaults={"paper": {"epochs": 100}},
    prepare=lazy("stbench_data_kth.reader:prepare_kth"),
    description="KTH Action: 25 persons, 6 actions, grey 128x128 frames",
    validation=0.1,  # no official validation split in OpenSTL/PredBench: 10% of the training clips (persons 1-16), in runs over every action
    sample_data=lazy("stbench_data_kth.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("DOWNLOADS", "index_videos", "_names", "clip_starts", "read_clip", "open_kth", "prepare_kth"),
})
