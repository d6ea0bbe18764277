"""The leaderboard pictures: valid, deterministic PNGs and GIFs that skip what is missing."""
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from stbench.figures import animate_samples, plot_per_frame, plot_strip, style

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


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures the module saves, for looking at what is on them."""
    from matplotlib.figure import Figure

    figures, save = [], Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def test_every_model_keeps_its_own_look_and_the_legend_sits_outside_the_axes(tmp_path, drawn):
    looks = [style(i) for i in range(24)]
    assert len({(str(s["color"]), s["marker"], s["linestyle"]) for s in looks}) == 24
    assert len({str(s["color"]) for s in looks[:20]}) == 20 and len({s["marker"] for s in looks[:11]}) == 11
    rng = np.random.default_rng(0)
    many = [record(f"model-{i:02d}", mse=list(rng.random(10) * 100), psnr=list(rng.random(10) * 30))
            for i in range(24)]
    many[0]["per_frame_std"] = {"mse": [1.0] * 10}
    path = plot_per_frame(many, tmp_path / "many.png")
    few = plot_per_frame(many[:3], tmp_path / "few.png")
    assert png_shape(path)[0] > png_shape(few)[0]  # the legend below grows with the models
    figure = drawn[0]
    figure.canvas.draw()
    legend = figure.legends[0].get_window_extent()
    assert len(figure.legends[0].get_texts()) == 24
    assert all(not legend.overlaps(ax.get_window_extent()) for ax in figure.axes)
    lines = figure.axes[0].get_lines()
    assert len({(line.get_color(), line.get_marker()) for line in lines}) == 24
    assert len(figure.axes[0].collections) == 1  # the std band of the one row with seeds
    assert "± 1 std over seeds" in figure._suptitle.get_text()


def test_axis_titles_carry_direction_and_unit(tmp_path, drawn):
    info = {"psnr": {"higher_is_better": True, "label": "PSNR", "unit": "dB"},
            "mse": {"higher_is_better": False, "label": "MSE", "unit": ""}}
    rows = [dict(record("tau", mse=[1.0, 2.0], psnr=[30.0, 29.0], ssim=[0.9, 0.8]), metric_info=info)]
    plot_per_frame(rows, tmp_path / "a.png")
    titles = [ax.get_title() for ax in drawn[0].axes]
    assert titles == ["MSE (↓ better)", "SSIM (↑ better)", "PSNR (↑ better)"]
    assert drawn[0].axes[2].get_ylabel() == "PSNR (dB)"


def flipped_copy(source, target):
    with np.load(source) as data:
        arrays = {key: data[key] for key in data.files}
    for key in ("inputs", "truth", "pred"):
        arrays[key] = arrays[key][..., ::-1, :]
    np.savez(target, **arrays)
    return target


def test_gridded_data_stored_south_to_north_are_drawn_north_up(tmp_path):
    """image_origin='lower' (row 0 is the southernmost) draws what the flipped arrays draw as images."""
    stored = save_sample(tmp_path / "weather.npz", t_in=4, t_out=4, size=(32, 64))
    upright = flipped_copy(stored, tmp_path / "upright.npz")
    lower = plot_strip([("m", stored)], tmp_path / "lower.png", image_origin="lower")
    assert lower.read_bytes() == plot_strip([("m", upright)], tmp_path / "upper.png").read_bytes()
    assert lower.read_bytes() != plot_strip([("m", stored)], tmp_path / "asis.png").read_bytes()
    gif = animate_samples([("m", stored)], tmp_path / "lower.gif", image_origin="lower")
    assert gif.read_bytes() == animate_samples([("m", upright)], tmp_path / "upper.gif").read_bytes()


def test_the_animated_clip_plays_inputs_then_every_model_side_by_side(tmp_path):
    from PIL import Image

    samples = [(name, save_sample(tmp_path / f"{name}.npz", t_in=5, t_out=7, seed=i))
               for i, name in enumerate(["tau", "a model with a very long name indeed", "simvp"])]
    path = animate_samples(samples, tmp_path / "clip.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5 + 7 and gif.info["loop"] == 0
        width, height = gif.size
        gif.seek(gif.n_frames - 1)
        assert gif.info["duration"] > 250  # the last frame holds before the loop restarts
    one = animate_samples(samples[:1], tmp_path / "one.gif")
    with Image.open(one) as gif:
        assert gif.size[0] < width and gif.size[1] == height  # one panel less (truth + 1 model), same rows
    assert animate_samples(samples, tmp_path / "again.gif").read_bytes() == path.read_bytes()
    assert animate_samples([("gone", tmp_path / "gone.npz")], tmp_path / "none.gif") is None
    assert not (tmp_path / "none.gif").exists()


def test_a_failed_write_leaves_neither_a_file_nor_a_temporary_one(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"half a pic")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        plot_per_frame([record("tau", mse=[1.0, 2.0])], tmp_path / "curves.png")
    assert list(tmp_path.iterdir()) == []


def test_strip_captions_are_readable_and_not_repeated_on_every_row(tmp_path, drawn):
    samples = [(name, save_sample(tmp_path / f"{name}.npz", t_in=4, t_out=6, seed=i))
               for i, name in enumerate(["tau", "simvp", "ustep"])]
    plot_strip(samples, tmp_path / "strip.png")
    captions = drawn[0].axes[0].texts
    assert [t.get_text() for t in captions] == ["t=-3", "t=-2", "t=-1", "t=0"] + [f"t=+{i}" for i in range(1, 7)]
    assert min(t.get_fontsize() for t in captions) >= 8
    assert [t.get_text() for t in drawn[0].axes[0].get_yticklabels()] == ["inputs", "ground truth", "tau", "simvp",
                                                                          "ustep"]
