"""The leaderboard pictures: valid, deterministic PNGs that skip what is missing."""
import math

import numpy as np
import pytest
from matplotlib.image import imread

from stbench.figures import plot_per_frame, plot_strip

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(model, label=None, **per_frame):
    return {"model": model, "label": label or model, "per_frame": per_frame}


def png_shape(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return imread(path).shape


def test_per_frame_curves_make_one_subplot_per_available_metric(tmp_path):
    records = [
        record("tau", mse=[20.0, 25.0, 30.0], ssim=[0.9, 0.85, 0.8]),
        record("simvp", "simvp (lr=0.01)", mse=[22.0, 27.0, 33.0], psnr=[30.0, 28.0, None]),
        {"model": "persistence", "per_frame": None},
        {"model": "broken", "per_frame": {"mse": "not a list", "mae": []}},
    ]
    path = plot_per_frame(records, tmp_path / "figures" / "mmnist-10-10_per_frame.png", title="mmnist-10-10")
    height, width, _ = png_shape(path)
    assert width > 2.5 * height  # three subplots side by side: mse, ssim, psnr
    assert plot_per_frame(records, tmp_path / "again.png", title="mmnist-10-10").read_bytes() == path.read_bytes()
    only_mse = plot_per_frame(records, tmp_path / "mse.png", metrics=("mse",))
    assert imread(only_mse).shape[1] < width


def test_per_frame_without_any_curve_writes_nothing(tmp_path):
    records = [{"model": "a"}, record("b", mse=[]), record("c", lpips=[0.1, 0.2])]
    assert plot_per_frame(records, tmp_path / "none.png") is None
    assert plot_per_frame([], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def save_sample(path, t_in=10, t_out=10, channels=1, size=(16, 20), vmin=0.0, vmax=1.0, seed=0, values=(0, 1)):
    rng = np.random.default_rng(seed)
    np.savez(path, inputs=rng.uniform(*values, (t_in, channels) + size),
             truth=rng.uniform(*values, (t_out, channels) + size),
             pred=rng.uniform(*values, (t_out, channels) + size), vmin=vmin, vmax=vmax)
    return path


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_strip_has_a_row_for_inputs_truth_and_each_model(tmp_path, channels):
    samples = [(name, save_sample(tmp_path / f"{name}.npz", channels=channels, seed=i))
               for i, name in enumerate(["tau", "simvp"])]
    path = plot_strip(samples, tmp_path / "strip.png")
    height, width, _ = png_shape(path)
    fewer = plot_strip(samples[:1], tmp_path / "strip1.png")
    assert imread(fewer).shape[0] < height  # one prediction row less
    assert plot_strip(samples, tmp_path / "strip2.png").read_bytes() == path.read_bytes()


def test_long_clips_are_subsampled(tmp_path):
    long_clip = save_sample(tmp_path / "long.npz", t_in=10, t_out=40)
    short_clip = save_sample(tmp_path / "short.npz", t_in=10, t_out=10)
    long_width = png_shape(plot_strip([("m", long_clip)], tmp_path / "long.png"))[1]
    short_width = png_shape(plot_strip([("m", short_clip)], tmp_path / "short.png"))[1]
    assert long_width == short_width  # 40 predicted frames shown as 10 columns
    wide = plot_strip([("m", long_clip)], tmp_path / "wide.png", max_columns=20)
    assert imread(wide).shape[1] > long_width


def test_unbounded_data_are_shown_over_the_range_of_the_truth(tmp_path):
    unbounded = save_sample(tmp_path / "k.npz", vmin=math.nan, vmax=math.nan, values=(250, 300))
    with np.load(unbounded) as data:
        low, high = data["truth"].min(), data["truth"].max()
    explicit = save_sample(tmp_path / "explicit.npz", vmin=low, vmax=high, values=(250, 300))
    assert (plot_strip([("m", unbounded)], tmp_path / "a.png").read_bytes()
            == plot_strip([("m", explicit)], tmp_path / "b.png").read_bytes())


def test_strip_skips_missing_or_broken_files(tmp_path):
    good = save_sample(tmp_path / "good.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "incomplete.npz", pred=np.zeros((10, 1, 4, 4)))
    samples = [("gone", tmp_path / "gone.npz"), ("broken", tmp_path / "broken.npz"),
               ("incomplete", tmp_path / "incomplete.npz"), ("good", good)]
    reference = plot_strip([("good", good)], tmp_path / "reference.png")
    assert plot_strip(samples, tmp_path / "strip.png").read_bytes() == reference.read_bytes()
    assert plot_strip(samples[:3], tmp_path / "nothing.png") is None
    assert not (tmp_path / "nothing.png").exists()


def test_strip_has_no_title_unless_asked(tmp_path, monkeypatch):
    """The per-frame captions must not leak into the figure title (a shadowed name once did)."""
    import numpy as np

    from stbench import figures

    sample = tmp_path / "s.npz"
    np.savez(sample, inputs=np.zeros((3, 1, 8, 8)), truth=np.ones((2, 1, 8, 8)), pred=np.ones((2, 1, 8, 8)),
             vmin=0.0, vmax=1.0)
    titles = []
    monkeypatch.setattr("matplotlib.axes.Axes.set_title", lambda self, text, **kw: titles.append(text))
    figures.plot_strip([("m", sample)], tmp_path / "a.png")
    figures.plot_strip([("m", sample)], tmp_path / "b.png", title="my clip")
    assert titles == ["my clip"]
