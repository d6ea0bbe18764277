"""A tiny RoboNet: HDF5 trajectories in the official format (MP4 and JPEG camera streams) with PredBench-style JSON
lists, for tests: core's dataset contract test and this plugin's."""
import io
from pathlib import Path

import av
import h5py
import numpy as np

from stbench import SampleData
from stbench_data_common.testing import jpeg_bytes, sample_of, write_split_lists

HEIGHT, WIDTH = 48, 64  # stored size of the made frames (RoboNet's own are larger); resized to 120x160 on reading


def frame(t, camera, bgr=False):
    """Red falls from top to bottom, green encodes the frame number, blue the camera and rises from left to right."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([225 - 150 * rows / HEIGHT, np.full((HEIGHT, WIDTH), 30.0 + 9 * t),
                    20 + 50 * camera + 40 * cols / WIDTH], -1)
    rgb = np.clip(rgb, 0, 255).round().astype(np.uint8)
    return rgb[..., ::-1].copy() if bgr else rgb


def mp4_bytes(frames):
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        stream.options = {"crf": "10"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def write_trajectory(path, count, cameras, encoding, image_format="RGB"):
    """One file as RoboNet ships it: env attrs n_cams / cam_encoding, env/cam<k>_video, plus state and actions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = image_format == "BGR"
    with h5py.File(path, "w") as handle:
        handle["file_version"] = "0.1.0"
        env = handle.create_group("env")
        env.attrs["n_cams"], env.attrs["cam_encoding"] = cameras, encoding
        env["state"] = np.zeros((count, 5), np.float32)
        handle.create_group("policy")["actions"] = np.zeros((count - 1, 4), np.float32)
        handle.create_group("misc")
        handle.create_group("metadata").attrs["robot"] = "sawyer"
        for camera in range(cameras):
            video = env.create_group(f"cam{camera}_video")
            frames = [frame(t, camera, bgr) for t in range(count)]
            if encoding == "mp4":
                data = video.create_dataset("frames", data=np.frombuffer(mp4_bytes(frames), np.uint8))
                data.attrs["T"], data.attrs["image_format"] = count, image_format
                data.attrs["shape"] = (HEIGHT, WIDTH, 3)
            else:
                for t, array in enumerate(frames):
                    data = video.create_dataset(f"frame{t}", data=np.frombuffer(jpeg_bytes(array), np.uint8))
                    data.attrs["image_format"], data.attrs["shape"] = image_format, (HEIGHT, WIDTH, 3)


FILES = {  # name -> (frames, cameras, encoding, channel order, split)
    "berkeley_sawyer_traj1.hdf5": (14, 3, "mp4", "RGB", "train"),
    "penn_baxter_left_traj2.hdf5": (8, 1, "mp4", "RGB", "train"),  # too short for 12 frames: dropped
    "google_traj3.hdf5": (13, 1, "jpg", "BGR", "train"),
    "stanford_fetch_traj4.hdf5": (12, 2, "jpg", "RGB", "val"),
    "berkeley_widowx_traj5.hdf5": (20, 3, "mp4", "RGB", "test"),
    "penn_kuka_traj6.hdf5": (16, 2, "mp4", "BGR", "test"),
}


def write_root(root, lists=True):
    """The trajectory files under ``root/robonet/hdf5`` and, with ``lists``, the three split lists."""
    root = Path(root)
    notes = {"train": [], "val": [], "test": []}
    for name, (count, cameras, encoding, image_format, split) in FILES.items():
        write_trajectory(root / "robonet" / "hdf5" / name, count, cameras, encoding, image_format)
        notes[split].append(name)
    if lists:
        write_split_lists(root, "robonet", notes)
    return root


def make_sample(root) -> SampleData:
    """robonet-2-10: 2 train clips (the 8-frame file is dropped), 1 val, 2 test."""
    write_root(root)
    return sample_of("robonet-2-10", {"train": 2, "val": 1, "test": 2}, (3, 120, 160),
                     "train: 3 files, 8..14 frames, 1..3 cameras, jpg/mp4 streams")
