"""`stbench data prepare kitticaltech-10-1`: Caltech's set tars and KITTI's raw drive zips into the layout read.

Caltech: set06-set10 .seq videos are copied as they are. KITTI: PredNet's ``process_kitti.py`` is redone from
the raw drives: every drive except PredNet's validation and test recordings, frames of ``image_03`` (the
right colour camera PredNet read), resized with Pillow's bilinear filter to height 128 (as
``scipy.misc.imresize``), centre 160 columns, into ``kitti_hkl/X_train.hkl`` and ``sources_train.hkl``
(HDF5 as hickle writes it).
"""
import os
import re
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from PIL import Image

from stbench import UserError
from stbench_data_common import copy_member, decode_image, members, staged_folder

from .norpix import SeqFile

SEQ_MEMBER = re.compile(r"(?:^|/)(set(\d\d))/(V\d{3})\.seq$", re.IGNORECASE)
CALTECH_TEST_SETS = range(6, 11)  # set06-set10: Caltech Pedestrian's test part, OpenSTL's test split
RAW_FRAME = re.compile(r"(?:^|/)(\d{4}_\d\d_\d\d_drive_\d{4}_sync)/image_03/data/(\d+)\.png$")
# PredNet's process_kitti.py: one city drive for validation, one drive of each category for testing
NOT_TRAIN = {"2011_09_26_drive_0005_sync", "2011_09_26_drive_0104_sync", "2011_09_26_drive_0079_sync",
             "2011_09_26_drive_0070_sync"}
HEIGHT, WIDTH = 128, 160


def process_im(image: np.ndarray) -> np.ndarray:
    """PredNet's process_im with scipy.misc.imresize (Pillow bilinear on uint8): height 128, centre 160 columns."""
    height, width = image.shape[:2]
    resized = np.asarray(Image.fromarray(image).resize((int(np.round(width * HEIGHT / height)), HEIGHT),
                                                       Image.BILINEAR))
    left = int((resized.shape[1] - WIDTH) / 2)
    return resized[:, left:left + WIDTH]


def _listing(source):
    """(Caltech members, KITTI training frames {(drive, number)}) found in the download, without reading them."""
    caltech, kitti = [], set()
    for member, _ in members(source):
        if (match := SEQ_MEMBER.search(member)) and int(match[2]) in CALTECH_TEST_SETS:
            caltech.append(member)
        elif (match := RAW_FRAME.search(member)) and match[1] not in NOT_TRAIN:
            kitti.add((match[1], int(match[2])))
    return caltech, sorted(kitti)


def _copy_caltech(source, staging: Path):
    videos = []
    for member, opener in members(source):
        match = SEQ_MEMBER.search(member)
        if not match or int(match[2]) not in CALTECH_TEST_SETS:
            continue
        name = f"set{match[2]}/{match[3].upper()}.seq"
        copy_member(opener, staging / name)
        try:  # a damaged video fails here, before anything is in place
            SeqFile(staging / name)
        except UserError:
            raise UserError(f"{member} in {Path(os.path.abspath(source))} is not a complete Norpix .seq video "
                            "(truncated or damaged); download it again") from None
        videos.append(name)
    return videos


def _write_kitti(source, staging: Path, frames):
    import h5py

    index = {frame: position for position, frame in enumerate(frames)}
    with h5py.File(staging / "X_train.hkl", "w") as handle:
        handle.attrs["CLASS"], handle.attrs["VERSION"] = b"hickle", b"2"
        data = handle.create_dataset("data_0", shape=(len(frames), HEIGHT, WIDTH, 3), dtype=np.uint8,
                                     chunks=(1, HEIGHT, WIDTH, 3))
        for member, opener in members(source):
            match = RAW_FRAME.search(member)
            if not match or (match[1], int(match[2])) not in index:
                continue
            with opener() as handle_in:
                image = decode_image(handle_in.read(), "RGB", what=f"{member} in {source}")
            data[index[(match[1], int(match[2]))]] = process_im(image)
    with h5py.File(staging / "sources_train.hkl", "w") as handle:
        handle.attrs["CLASS"], handle.attrs["VERSION"] = b"hickle", b"2"
        handle.create_dataset("data_0", data=np.array([drive.encode() for drive, _ in frames]))


def prepare_kitticaltech(source, root):
    """Lay out whichever parts the download holds: Caltech's test videos and / or KITTI's raw training drives."""
    caltech, kitti = _listing(source)
    if not caltech and not kitti:
        raise UserError(f"{Path(os.path.abspath(source))} holds neither Caltech test videos (set06..set10/V*.seq, or "
                        "set06.tar .. set10.tar) nor KITTI raw drives (<date>_drive_NNNN_sync/image_03/data/*.png, "
                        "or their zips); give the folder holding the downloads")
    lines = []
    with ExitStack() as stack:  # every part is renamed into place only when all parts are complete
        if caltech:
            staging = stack.enter_context(staged_folder(Path(root) / "caltech"))
            videos = _copy_caltech(source, staging)
            sets = sorted({name.split("/")[0] for name in videos})
            lines.append(f"{len(videos)} Caltech test videos ({', '.join(sets)}) to "
                         f"{Path(os.path.abspath(root)) / 'caltech'}")
        if kitti:
            staging = stack.enter_context(staged_folder(Path(root) / "kitti_hkl"))
            _write_kitti(source, staging, kitti)
            drives = sorted({drive for drive, _ in kitti})
            lines.append(f"{len(kitti)} KITTI frames of {len(drives)} training drives (image_03, PredNet's "
                         f"processing) to {Path(os.path.abspath(root)) / 'kitti_hkl'}")
    return "kitticaltech: " + "; ".join(lines) + "; check with 'stbench data check kitticaltech-10-1'"
