"""MAU: OpenSTL's weights reproduce OpenSTL's outputs, the published sizes, the attention window, the schedule."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stbench import Task, UserError, plugins
from stbench.checkpoints import read_checkpoint, load_weights
from stbench.config import TRAIN_KEYS, resolve
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_convlstm import RecurrentPredictor, ScheduledSampling
from stbench_mau import MAU, MotionAwareUnit

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
OPENSTL_CONFIGS = json.loads((FIXTURES / "openstl_mau_configs.json").read_text())
TOLERANCE = 1e-5  # at the output's own scale; in practice the outputs are identical
LATE = 10_000  # after every smoke schedule: no teacher forcing left


def spec():
    return plugins.get_model("mau")


def fixture_settings(name):
    settings = dict(MANIFEST["models"][name]["settings"])
    settings["num_hidden"] = [int(n) for n in settings["num_hidden"].split(",")]
    return settings


def build(profile="paper", task_name="mmnist-10-10", seed=0, **overrides):
    """The model as `stbench eval --profile PROFILE --set ...` builds it."""
    task = plugins.resolve_task(task_name)
    _, hparams, _ = resolve(spec(), plugins.get_dataset(task.dataset), profile, overrides)
    torch.manual_seed(seed)
    return spec().build(task, hparams)


@pytest.fixture(scope="module")
def clips():
    return torch.load(FIXTURES / MANIFEST["input"], weights_only=True)["x_uint8"].float() / 255


# ------------------------------------------------------------------------------------------ fidelity

@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_openstl_weights_reproduce_openstl_output(name, clips):
    entry = MANIFEST["models"][name]
    model = build(**fixture_settings(name))
    checkpoint = read_checkpoint(FIXTURES / entry["file"])
    notes = load_weights(model, checkpoint, spec())
    model.eval()
    with torch.no_grad():
        pred = model(clips, 10)
    expected = torch.load(FIXTURES / entry["output"], weights_only=True)
    assert pred.shape == expected.shape == (2, 10, 1, 64, 64)
    scale = max(1.0, float(expected.abs().max()))
    assert float((pred - expected).abs().max()) <= TOLERANCE * scale
    # the weights matter: a fresh draw of the same model is far from OpenSTL's output
    fresh = build(seed=123, **fixture_settings(name)).eval()
    with torch.no_grad():
        assert float((fresh(clips, 10) - expected).abs().max()) > 1e-2
    assert notes["keys_loaded"] == len(model.state_dict())
    # the two 1x1 convolutions OpenSTL (and the original code) create and never call are dropped, and named
    assert {item["key"]: item["parameters"] for item in notes["dropped"]} == {
        "merge.weight": 8 * 16, "merge.bias": 8, "conv_last_sr.weight": 2, "conv_last_sr.bias": 1}


def test_fixtures_cover_both_modes_and_two_containers():
    entries = MANIFEST["models"].values()
    assert {(e["settings"]["cell_mode"], e["settings"]["model_mode"]) for e in entries} == {
        ("normal", "normal"), ("residual", "recall")}
    formats = {read_checkpoint(FIXTURES / e["file"]).format for e in entries}
    assert formats == {"openstl-lightning", "openstl-pth"}


def test_modes_change_the_model():
    """recall (decoder skips) and residual (S shortcut) are real paths: the same weights predict differently."""
    settings = fixture_settings("mau_recall_residual")
    checkpoint = read_checkpoint(FIXTURES / MANIFEST["models"]["mau_recall_residual"]["file"])
    x = torch.rand(1, 10, 1, 64, 64)
    outputs = []
    for cell_mode, model_mode in (("residual", "recall"), ("normal", "recall"), ("residual", "normal")):
        model = build(**dict(settings, cell_mode=cell_mode, model_mode=model_mode))
        load_weights(model, checkpoint, spec())
        with torch.no_grad():
            outputs.append(model.eval()(x, 3))
    assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[0], outputs[2])


# --------------------------------------------------------------------------------- published figures

# OpenSTL's model zoo (docs/en/model_zoos/{video,traffic,weather}_benchmarks.md): params (M), FLOPs (G, = MACs)
PUBLISHED = {"mmnist-10-10": (Task("mmnist", 10, 10, (1, 64, 64)), 4.5, 17.8),
             "mfmnist-10-10": (Task("mfmnist", 10, 10, (1, 64, 64)), 4.5, 17.8),
             "kth-10-20": (Task("kth", 10, 20, (1, 128, 128)), 20.1, 399.0),
             "human-4-4": (Task("human", 4, 4, (3, 256, 256)), 20.2, 105.0),
             "kitticaltech-10-1": (Task("kitticaltech", 10, 1, (3, 128, 160)), 24.3, 172.0),
             "taxibj-4-4": (Task("taxibj", 4, 4, (2, 32, 32)), 4.41, 6.02),
             "weather-12-12": (Task("weather", 12, 12, (1, 32, 64)), 5.46, 39.6)}
# counted over every step here; the others count one step and multiply (the steps cost the same)
FULL_COUNT = ("mmnist-10-10", "taxibj-4-4")


def unused(channels):
    """What OpenSTL counts and never calls: merge (1x1, 128 -> 64) and conv_last_sr (1x1, 2C -> C)."""
    return 64 * 128 + 64 + 2 * channels * channels + channels


@pytest.mark.parametrize("task_name", sorted(PUBLISHED))
def test_paper_profile_matches_the_published_figures(task_name):
    task, params_m, gmacs = PUBLISHED[task_name]
    hparams = {k: v for k, v in spec().settings_for("paper", task.dataset).items() if k not in TRAIN_KEYS}
    with torch.device("meta"):  # shapes only
        model = spec().build(task, hparams)
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert (count_params(model) + unused(task.shape[0])) / 1e6 == pytest.approx(params_m, rel=0.01)
    if task_name in FULL_COUNT:
        macs = count_macs(model, task)
    else:
        macs = count_macs(model, Task(task.dataset, 1, 1, task.shape)) * (task.t_in + task.t_out - 1)
    assert macs / 1e9 == pytest.approx(gmacs, rel=0.02)


@pytest.mark.parametrize("dataset", ["mmnist", "mfmnist", "kth", "human", "taxibj", "kitticaltech", "bair", "weather"])
def test_paper_profile_follows_openstl_configs(dataset):
    openstl = OPENSTL_CONFIGS[dataset]
    ours = spec().settings_for("paper", dataset)
    assert ours["num_hidden"] == [int(n) for n in openstl["num_hidden"].split(",")]
    for key in ("filter_size", "patch_size", "sr_size", "tau", "cell_mode", "model_mode", "sampling_stop_iter",
                "sampling_start_value", "sampling_changing_rate"):
        assert ours[key] == openstl[key], key
    assert (openstl["stride"], openstl["scheduled_sampling"]) == (1, 1)  # what stbench's MAU always does
    train, _, _ = resolve(spec(), plugins.get_dataset(dataset), "paper", {})
    assert train["lr"] == openstl.get("lr", 1e-3)  # OpenSTL's parser default where the file leaves it out
    assert train["schedule"] == openstl.get("sched", "onecycle")


# ----------------------------------------------------------------------------------------- behaviour

def test_mau_is_a_recurrent_predictor_with_a_biased_read_out():
    model = build("smoke")
    assert isinstance(model, MAU) and isinstance(model, RecurrentPredictor) and spec().family == "recurrent"
    assert model.conv_last.bias is not None


def test_attention_with_equal_scores_averages_the_temporal_window():
    """Scores compare the S window with the current input; equal scores give the plain mean of the T window."""
    torch.manual_seed(0)
    cell = MotionAwareUnit(4, 3, (6, 6), tau=3, residual=False)
    t, s = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    t_window = torch.randn(3, 2, 4, 6, 6)
    same_s = torch.randn(2, 4, 6, 6).expand(3, -1, -1, -1, -1)
    mean = t_window.mean(dim=0).expand(3, -1, -1, -1, -1)
    assert torch.allclose(cell(t, s, t_window, same_s)[0], cell(t, s, mean, same_s)[0], atol=1e-6)
    # with distinct S entries the window is weighted, and the order of (T, S) pairs does not matter
    s_window = torch.randn(3, 2, 4, 6, 6)
    order = torch.tensor([2, 0, 1])
    weighted = cell(t, s, t_window, s_window)
    assert torch.allclose(weighted[0], cell(t, s, t_window[order], s_window[order])[0], atol=1e-6)
    assert not torch.allclose(weighted[0], cell(t, s, mean, s_window)[0], atol=1e-4)


def test_each_layer_keeps_the_last_tau_states():
    model = build("smoke", task_name="mmnist-10-10", tau=3).eval()
    frames = model.to_patches(torch.rand(1, 5, 1, 64, 64))
    state = model.initial_state(frames[:, 0])
    inputs, temporal = [], []
    with torch.no_grad():
        for t in range(5):
            inputs.append(model.encoders[1](model.encoders[0](frames[:, t])))  # layer 0's spatial input
            _, state, _ = model.step(frames[:, t], state, False)
            temporal.append(state[0][0])
    t_window, s_window = state[1][0], state[2][0]
    assert len(t_window) == len(s_window) == 3
    for k in range(3):
        assert torch.equal(s_window[k], inputs[2 + k]) and torch.equal(t_window[k], temporal[2 + k])
    short = model.initial_state(frames[:, 0])
    with torch.no_grad():
        _, short, _ = model.step(frames[:, 0], short, False)
    assert not short[2][0][0].any() and not short[2][0][1].any()  # zeros before the first frame
    assert torch.equal(short[2][0][2], inputs[0])


def test_scheduled_sampling_decays_linearly():
    """As the original code: eta falls by the rate each step (OpenSTL's Lightning MAU never stores eta)."""
    model = build("paper")
    assert model.sampling == ScheduledSampling(start_value=1.0, changing_rate=2e-5, stop_iter=50000)
    assert model.sampling.eta(0) == pytest.approx(1 - 2e-5)
    assert model.sampling.eta(24_999) == pytest.approx(0.5)
    assert model.sampling.eta(50_000) == 0.0


def teacher_free_predictions(model, frames, t_in):
    early = [model(frames[:, :k], 1) for k in range(1, t_in)]
    return torch.cat(early + [model(frames[:, :t_in], frames.shape[1] - t_in)], dim=1)


def test_no_ground_truth_future_reaches_predictions():
    model = build("smoke", task_name="mmnist-3-4")
    x, y = torch.rand(2, 3, 1, 64, 64), torch.rand(2, 4, 1, 64, 64)
    with torch.no_grad():
        short, long = model(x, 2), model(x, 4)
        assert torch.equal(short, long[:, :2])
        frames = torch.cat([x, y], dim=1)
        expected = F.mse_loss(teacher_free_predictions(model, frames, 3), frames[:, 1:])
        assert torch.allclose(model.loss(x, y, LATE), expected, rtol=1e-5, atol=1e-7)
        torch.manual_seed(0)
        assert not torch.allclose(model.loss(x, y, 0), expected)  # teacher forcing on: the truth goes in


def test_quick_schedule_is_scaled_to_the_steps_that_run():
    train, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), "quick", {})
    steps = train["epochs"] * (train["train_samples"] // train["batch_size"])
    assert hparams["sampling_stop_iter"] == round(0.4 * steps)
    assert hparams["sampling_start_value"] - hparams["sampling_changing_rate"] * hparams["sampling_stop_iter"] \
        == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("change, message", [
    (dict(num_hidden=[8, 16]), "same width"),
    (dict(sr_size=3), "power of 2"),
    (dict(sr_size=64), "divides the patch grid"),
    (dict(cell_mode="recall"), "cell_mode must be one of normal, residual"),
    (dict(model_mode="residual"), "model_mode must be one of normal, recall"),
    (dict(tau=0), "at least 1"),
    (dict(filter_size=4), "odd"),
    (dict(patch_size=3), "patch_size 3 must divide"),
])
def test_bad_hyper_parameters_are_one_line_user_errors(change, message):
    with pytest.raises(UserError, match=message) as error:
        build("smoke", **change)
    assert "\n" not in str(error.value)
