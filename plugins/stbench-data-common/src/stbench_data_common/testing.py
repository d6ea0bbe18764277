"""Test helpers for the dataset plugins: writing tiny frames, and running the CLI on a fixture."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def frames(count, height, width, channels=3, seed=0):
    """``count`` uint8 frames ``[H, W, C]`` with smooth structure (so JPEG keeps them close)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    out = []
    for index in range(count):
        phase = rng.random(channels) * 6.28
        wave = [127 + 100 * np.sin(rows / 3.0 + cols / 5.0 + index * 0.3 + p) for p in phase]
        out.append(np.clip(np.stack(wave, -1), 0, 255).astype(np.uint8))
    return out


def write_image(path, array, quality=95):
    """Save ``[H, W, C]`` uint8 as JPEG or PNG by suffix, creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    image.save(path, quality=quality) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)
    return path


def write_video(path, frames, fps=25, codec="mpeg4", quality=2):
    """Encode uint8 ``[H, W, 3]`` frames into a video file with PyAV.

    ``mpeg4`` (MPEG-4 part 2, as KTH's AVIs) is lossy; ``ffv1`` stores RGB losslessly, so decoded frames equal
    the input exactly.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": str(quality)}
        for array in frames:
            rgb = array if array.shape[-1] == 3 else np.repeat(array, 3, axis=-1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def jpeg_bytes(array, quality=95):
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def sample_of(task, clips, shape, *lines):
    """The :class:`stbench.SampleData` of made data that :func:`stbench_data_common.check_report` describes: ``clips``
    (``{split: count}`` for ``task``) and the report lines those counts give, after ``lines`` (the dataset's own)."""
    from stbench import SampleData, parse_task

    length = parse_task(task).length
    counted = tuple(f"{split}: {count} clips of {length} frames, frame shape {tuple(shape)}"
                    for split, count in clips.items())
    return SampleData(task=task, clips=dict(clips), check_lines=tuple(lines) + counted)


def write_split_lists(root, dataset, lists):
    """PredBench's annotation lists: ``root/annotations/<dataset>/<dataset>_<split>.json`` for each split of ``lists``
    (whatever each split's listing is: names, or names with frame counts or frame paths)."""
    folder = Path(root) / "annotations" / dataset
    folder.mkdir(parents=True)
    for split, listed in lists.items():
        (folder / f"{dataset}_{split}.json").write_text(json.dumps(listed, indent=4))


def stbench(*args, timeout=600):
    """Run ``python -m stbench ARGS``; the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "stbench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def smoke_run(task, data_root, out):
    """``stbench run --models persistence --tasks TASK --profile smoke``; (process, [run records])."""
    process = stbench("run", "--models", "persistence", "--tasks", task, "--profile", "smoke",
                      "--data-root", data_root, "--out", out)
    records = [json.loads(path.read_text()) for path in sorted(Path(out, "runs").rglob("*.json"))]
    return process, records


def smoke_record(task, data_root, out):
    """:func:`smoke_run` as (exit code, stderr, the run record or None)."""
    process, records = smoke_run(task, data_root, out)
    return process.returncode, process.stderr, (records[0] if records else None)


def assert_smoke_run(task, data_root, out, train_clips, test_clips, shape):
    """A smoke run of TASK succeeds; its record shows the fixture's clip counts and the frame shape.

    ``train_clips`` / ``test_clips`` must fit the smoke profile's sample caps (16 / 8) so the record's
    counts (clips actually used) equal the clips the fixture holds.
    """
    process, records = smoke_run(task, data_root, out)
    assert process.returncode == 0, process.stderr[-2000:]
    assert len(records) == 1, f"expected one run record under {out}/runs, found {len(records)}"
    record = records[0]
    assert record["status"] == "ok" and record["task"] == task, record.get("status")
    assert record["data"]["train"]["clips"] == train_clips, record["data"]
    assert record["data"]["test"]["clips"] == test_clips, record["data"]
    assert record["shape"] == list(shape), record["shape"]
    return record


def assert_user_error(*args):
    """A CLI command fails with exit code 2 and one error line on stderr, no traceback (notes and warnings
    about the run's settings may come before it)."""
    process = stbench(*args)
    assert process.returncode == 2, (process.returncode, process.stderr[-2000:])
    assert "Traceback" not in process.stderr, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip() and "warning" not in line
             and not line.startswith("stbench: note:")]
    assert len(lines) == 1, process.stderr
    return lines[0]
