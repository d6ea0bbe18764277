"""Shared readers for the stbench video / image dataset plugins: frames, clip indexing, arrays on disk, checks."""
from stbench import lazy_exports

__all__ = [
    "center_crop", "check_length", "check_report", "copy_member", "decode_frames", "decode_image", "describe_split",
    "end_aligned_starts", "fetch_hint", "frame_count", "frames_present", "LazyH5", "LazyNpy", "load_data_pickle",
    "load_npy", "longest_task_length", "members", "NoClips", "non_empty", "npz_member", "open_h5", "prepare_needed",
    "read_clip_list", "read_h5", "read_json", "remove_stale_staging", "require_dir", "require_file", "resize",
    "resize_like_opencv", "resolve_split", "runs", "sample_frames_start", "stack_frames", "staged_folder",
    "tasks_by_length", "to_unit", "video_spec", "VIDEO_SUFFIXES", "VideoClips",
]

# each name loads its module on first use: an entry module that declares a dataset with video_spec or
# fetch_hint (checks, staging: no torch) does not import the readers (numpy, torch, PIL) with it
__getattr__ = lazy_exports(__name__, {
    "annotations": ("read_json",),
    "arrays": ("LazyH5", "LazyNpy", "load_npy", "npz_member", "open_h5", "read_h5"),
    "checks": ("check_report", "describe_split", "fetch_hint", "frames_present", "longest_task_length", "require_dir",
               "require_file", "tasks_by_length", "video_spec"),
    "clips": ("NoClips", "VideoClips", "check_length", "end_aligned_starts", "non_empty", "read_clip_list",
              "resolve_split", "runs", "sample_frames_start"),
    "frames": ("center_crop", "decode_image", "resize", "resize_like_opencv", "stack_frames", "to_unit"),
    "pickles": ("load_data_pickle",),
    "staging": ("copy_member", "members", "prepare_needed", "remove_stale_staging", "staged_folder"),
    "video": ("VIDEO_SUFFIXES", "decode_frames", "frame_count"),
})
