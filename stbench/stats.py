"""Whether one leaderboard row beats another: a paired bootstrap over test clips, seeds resampled per row.

Every row of a table is scored on the same test clips in the same order, so the clips are resampled
jointly for all rows (the pairing removes the clip-to-clip variation that all models share); each
row's seeds are resampled within the row, so training noise counts too. Deterministic: the draws
come from a fixed seed.
"""
from typing import List, Optional, Sequence, Set, Tuple

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0
_CHUNK = 64  # resamples drawn at a time: bounds memory for test sets of 10,000 clips
METHOD = (f"paired bootstrap over test clips (clips drawn jointly for all rows, seeds drawn within each row), "
          f"{RESAMPLES} resamples, two-sided {CONFIDENCE:.0%}")


def bootstrap_means(samples: Sequence[np.ndarray], resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``samples[i]`` holds row i's per-clip values, ``[n_seeds_i, n_clips]`` (one seed may be 1-D).
    Returns ``[resamples, rows]``: per resample, one draw of the clips with replacement shared by all
    rows and, per row, a draw of its seeds with replacement; the entry is the mean over both draws."""
    arrays = [np.atleast_2d(np.asarray(sample, dtype=float)) for sample in samples]
    if not arrays:
        raise ValueError("bootstrap_means: no rows")
    clips = arrays[0].shape[1]
    if clips == 0 or any(a.shape[1] != clips or a.shape[0] == 0 for a in arrays):
        raise ValueError("bootstrap_means: every row needs values for the same, non-empty set of clips")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("bootstrap_means: per-clip values must be finite")
    by_clip = np.concatenate(arrays, axis=0).T  # [clips, all seeds of all rows]
    rng = np.random.default_rng(seed)
    per_seed = np.empty((resamples, by_clip.shape[1]))
    for start in range(0, resamples, _CHUNK):
        n = min(_CHUNK, resamples - start)
        drawn = rng.integers(0, clips, size=(n, clips)) + clips * np.arange(n)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=n * clips).reshape(n, clips)
        per_seed[start:start + n] = counts @ by_clip / clips
    means = np.empty((resamples, len(arrays)))
    offset = 0
    for row, array in enumerate(arrays):
        seeds = array.shape[0]
        picks = rng.integers(0, seeds, size=(resamples, seeds)) + offset
        means[:, row] = np.take_along_axis(per_seed, picks, axis=1).mean(axis=1)
        offset += seeds
    return means


def badness(values, higher_is_better: bool, target: Optional[float] = None) -> np.ndarray:
    """Values turned into 'lower is better': the value, its negative, or its distance to the target."""
    values = np.asarray(values, dtype=float)
    if target is not None:
        return np.abs(values - target)
    return -values if higher_is_better else values


def significantly_better(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> bool:
    """True when bootstrap badness ``a`` is lower than ``b``: the two-sided interval of ``b - a`` lies above 0."""
    low = np.quantile(np.asarray(b) - np.asarray(a), (1.0 - confidence) / 2.0)
    return bool(low > 0)


def tested_marks(point: Sequence[float], resampled: np.ndarray,
                 confidence: float = CONFIDENCE) -> Tuple[Optional[int], Optional[int]]:
    """Best and second rows by badness (``point`` per row, ``resampled`` ``[resamples, rows]``), each given
    only when significantly better than every row ranked below it; None where the test does not
    separate them. The second needs a best above it and at least one row below it."""
    order = [int(i) for i in np.argsort(np.asarray(point, dtype=float), kind="stable")]
    if len(order) < 2:
        return None, None

    def beats_the_rest(rank):
        return all(significantly_better(resampled[:, order[rank]], resampled[:, other], confidence)
                   for other in order[rank + 1:])

    best = order[0] if beats_the_rest(0) else None
    second = order[1] if best is not None and len(order) > 2 and beats_the_rest(1) else None
    return best, second


def marks_by_value(point: Sequence[Optional[float]]) -> Tuple[Set[int], Set[int]]:
    """Best and second by value alone (no test), the fallback for records without per-clip values:
    every row holding the lowest badness when some row is worse, then every row holding the next
    value when some row is worse still (the rule :func:`tested_marks` follows, minus the test)."""
    present = sorted({v for v in point if v is not None})
    best = {i for i, v in enumerate(point) if len(present) > 1 and v == present[0]}
    second = {i for i, v in enumerate(point) if len(present) > 2 and v == present[1]}
    return best, second


def per_clip_matrix(series: List[Optional[Sequence]]) -> Optional[np.ndarray]:
    """The per-clip lists of one row's seeds as ``[seeds, clips]``; None unless all are present, equally
    long and finite."""
    if not series or any(not isinstance(values, (list, tuple)) or not values for values in series):
        return None
    if len({len(values) for values in series}) != 1:
        return None
    try:
        matrix = np.array([[np.nan if v is None else float(v) for v in values] for values in series])
    except (TypeError, ValueError):
        return None
    return matrix if np.isfinite(matrix).all() else None
