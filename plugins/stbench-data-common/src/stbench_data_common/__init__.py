"""Shared readers for the stbench video / image dataset plugins: frames, clip indexing, arrays on disk, checks."""
from .arrays import LazyH5, LazyNpy, load_npy, open_h5, read_h5
from .checks import (check_report, describe_split, frames_present, longest_task_length, require_dir, require_file,
                     tasks_by_length, video_spec)
from .clips import (NoClips, VideoClips, check_length, end_aligned_starts, non_empty, read_clip_list, resolve_split,
                    runs)
from .frames import center_crop, decode_image, resize, stack_frames, to_unit

__all__ = [
    "LazyH5", "LazyNpy", "NoClips", "VideoClips", "center_crop", "check_length", "check_report", "decode_image",
    "describe_split", "end_aligned_starts", "frames_present", "load_npy", "longest_task_length", "non_empty",
    "open_h5", "read_clip_list", "read_h5", "require_dir", "require_file", "resize", "resolve_split", "runs",
    "stack_frames", "tasks_by_length", "to_unit", "video_spec",
]
