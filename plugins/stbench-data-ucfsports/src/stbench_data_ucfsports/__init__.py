"""stbench dataset plugin: UCF Sports at full 720x480 resolution with the STRPM clip lists (ucfsports-4-1)."""
from stbench import hookimpl, lazy, lazy_exports
from stbench_data_common import fetch_hint, video_spec

FOLDER = "ucfsports"
IMAGES = "ucf_action_images"
HEIGHT, WIDTH = 480, 720
MAX_LENGTH = 10  # STRPM's lists give windows of total_length = 10 frames
EXTENSIONS = (".png", ".jpg")

SOURCE = "https://www.crcv.ucf.edu/data/ucf_sports_actions.zip (split lists: ZhengChang467/STRPM datasets/ucfsports)"
LAYOUT = f"""UCF Sports ({FOLDER}/ under the data root), frames as STRPM extracts them:
  {FOLDER}/{IMAGES}/<Action>/<NNN>/<i>.png    frame i of a video, 720x480 RGB (e.g. Diving-Side/001/42.png)
  {FOLDER}/train.txt, {FOLDER}/test.txt        STRPM's lists, one clip a line: '<video folder>/,<first frame>'
Source: {SOURCE}. The lists' absolute paths (E:/datasets/.../{IMAGES}/Diving-Side/001/) are read from
'{IMAGES}/' on (or their last two parts), so they work unmodified. .jpg frames are accepted where .png are absent.
Splits: STRPM's random train / test clips of the 150 videos: 6,288 train / 752 test clips (USTEP Table I).
A clip is consecutive frames <first>, <first>+1, ...; RGB, resized to 480x720 (bilinear) when stored otherwise,
/255 -> [0, 1]. PredBench has no UCF Sports loader; this follows STRPM, whose lists USTEP's counts match."""
HINT = (f"expected {FOLDER}/{IMAGES}/<Action>/<NNN>/<i>.png with {FOLDER}/train.txt and test.txt; "
        + fetch_hint(SOURCE, "ucfsports-4-1"))


SPEC = video_spec(
    name="ucfsports",
    shape=(3, HEIGHT, WIDTH),
    open=lazy("stbench_data_ucfsports.reader:open_ucfsports"),
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("ucfsports-4-1",),
    extra_checks=[lazy("stbench_data_ucfsports.reader:check_frames")],
    description="UCF Sports: broadcast sports actions, RGB 480x720",
    validation=0.1,  # no official validation split: 10% of the training clips, held out by core
    sample_data=lazy("stbench_data_ucfsports.sample:make_sample"),
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("video_folder", "frame_path", "list_clips", "read_clip", "open_ucfsports", "check_frames"),
})
