"""The significance test behind leaderboard marks: a paired bootstrap over clips, seeds within rows."""
import numpy as np
import pytest

from stbench import stats


def clips(n=400, seed=0):
    """Per-clip difficulty that every model shares (what pairing cancels)."""
    return np.random.default_rng(seed).gamma(2.0, 50.0, size=n)


def test_bootstrap_is_deterministic_and_centred_on_the_means():
    difficulty = clips()
    rows = [difficulty[None, :] + 1.0, np.stack([difficulty, difficulty + 2.0])]
    first, again = stats.bootstrap_means(rows), stats.bootstrap_means(rows)
    assert first.shape == (stats.RESAMPLES, 2) and np.array_equal(first, again)
    assert first.mean(axis=0) == pytest.approx([difficulty.mean() + 1.0, difficulty.mean() + 1.0], rel=0.01)
    assert not np.array_equal(first, stats.bootstrap_means(rows, seed=1))


def test_pairing_separates_a_small_consistent_gain_that_clip_noise_would_hide():
    """B is better than A by 0.5 on every clip, far below the clip-to-clip spread (about 70)."""
    difficulty = clips()
    a, b = difficulty + 0.5, difficulty
    means = stats.bootstrap_means([a, b])
    assert stats.significantly_better(means[:, 1], means[:, 0])
    assert not stats.significantly_better(means[:, 0], means[:, 1])
    unpaired = [stats.bootstrap_means([a], seed=1)[:, 0], stats.bootstrap_means([b], seed=2)[:, 0]]
    assert not stats.significantly_better(unpaired[1], unpaired[0])  # without pairing: not separable


def test_seed_noise_counts():
    """Two rows whose clip-level gap is small against how much their seeds disagree are not separated."""
    rng = np.random.default_rng(3)
    difficulty = clips()
    a = np.stack([difficulty + offset for offset in (0.0, 6.0, -5.0)]) + rng.normal(0, 0.1, (3, len(difficulty)))
    b = np.stack([difficulty + offset for offset in (1.0, -4.0, 4.5)]) + rng.normal(0, 0.1, (3, len(difficulty)))
    means = stats.bootstrap_means([a, b])
    assert not stats.significantly_better(means[:, 0], means[:, 1])
    assert not stats.significantly_better(means[:, 1], means[:, 0])


@pytest.mark.parametrize("higher, target, values, expected", [
    (False, None, [3.0, 1.0, 2.0], [3.0, 1.0, 2.0]),
    (True, None, [0.5, 0.9], [-0.5, -0.9]),
    (False, 1.0, [1.4, 0.95, 0.7], [0.4, 0.05, 0.3]),
])
def test_badness_is_lower_is_better_for_every_direction(higher, target, values, expected):
    assert stats.badness(values, higher, target) == pytest.approx(expected)


def test_marks_only_where_the_rows_below_are_beaten():
    difficulty = clips()
    clear = [difficulty, difficulty + 5.0, difficulty + 10.0, difficulty + 10.01]
    means = stats.bootstrap_means(clear)
    point = [row.mean() for row in clear]
    assert stats.tested_marks(point, means) == (0, 1)
    rng = np.random.default_rng(4)
    tied = [difficulty + rng.normal(0, 20, len(difficulty)), difficulty + rng.normal(0, 20, len(difficulty)),
            difficulty + 30.0]
    means = stats.bootstrap_means(tied)
    assert stats.tested_marks([row.mean() for row in tied], means) == (None, None)
    two = clear[:2]
    assert stats.tested_marks([row.mean() for row in two], stats.bootstrap_means(two)) == (0, None)
    assert stats.tested_marks([1.0], stats.bootstrap_means(clear[:1])) == (None, None)


def test_marks_by_value_is_the_untested_fallback():
    assert stats.marks_by_value([2.0, None, 1.0, 3.0, 1.0]) == ({2, 4}, {0})
    assert stats.marks_by_value([2.0, 1.0]) == ({1}, set())  # no second without a row below it
    assert stats.marks_by_value([2.0, 2.0]) == (set(), set())  # all equal: nothing stands out
    assert stats.marks_by_value([2.0]) == (set(), set())
    assert stats.marks_by_value([None, None]) == (set(), set())


def test_per_clip_matrix_needs_every_seed_complete():
    assert stats.per_clip_matrix([[1, 2], [3, 4]]).shape == (2, 2)
    assert stats.per_clip_matrix([[1, 2], [3]]) is None
    assert stats.per_clip_matrix([[1, 2], None]) is None
    assert stats.per_clip_matrix([[1, None]]) is None
    assert stats.per_clip_matrix([]) is None
    with pytest.raises(ValueError, match="same"):
        stats.bootstrap_means([np.ones(3), np.ones(4)])
