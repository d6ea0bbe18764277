"""Shared readers for the stbench video / image dataset plugins: frames, clip indexing, arrays on disk, checks."""
from .arrays import LazyH5, LazyNpy, load_npy, npz_member, open_h5, read_h5
from .checks import (check_report, describe_split, fetch_hint, frames_present, longest_task_length, require_dir,
                     require_file, tasks_by_length, video_spec)
from .clips import (NoClips, VideoClips, check_length, end_aligned_starts, non_empty, read_clip_list, resolve_split,
                    runs)
from .frames import center_crop, decode_image, resize, stack_frames, to_unit
from .pickles import load_data_pickle
from .staging import copy_member, members, prepare_needed, staged_folder
from .video import VIDEO_SUFFIXES, decode_frames, frame_count

__all__ = [
    "center_crop", "check_length", "check_report", "copy_member", "decode_frames", "decode_image", "describe_split",
    "end_aligned_starts", "fetch_hint", "frame_count", "frames_present", "LazyH5", "LazyNpy", "load_data_pickle",
    "load_npy", "longest_task_length", "members", "NoClips", "non_empty", "npz_member", "open_h5", "prepare_needed",
    "read_clip_list", "read_h5", "require_dir", "require_file", "resize", "resolve_split", "runs", "stack_frames",
    "staged_folder", "tasks_by_length", "to_unit", "video_spec", "VIDEO_SUFFIXES", "VideoClips",
]
