"""PredNet against OpenSTL v0.3.0's own weights and outputs, its training loss, and its published size."""
from pathlib import Path

import pytest
import torch

from stbench import Task, UserError, plugins
from stbench.checkpoints import load_weights, read_checkpoint
from stbench.config import TRAIN_KEYS, resolve
from stbench.models import count_params
from stbench.profiling import count_macs

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = {"stack_sizes": [8, 16, 16], "r_stack_sizes": [8, 16, 16], "a_filt_sizes": [3, 3, 3],
         "ahat_filt_sizes": [3, 3, 3, 3], "r_filt_sizes": [3, 3, 3, 3]}  # the fixture's widths


def build(**overrides):
    """The model as `stbench eval --tasks mmnist-10-10 --profile paper --set ...` builds it."""
    spec = plugins.get_model("prednet")
    task = plugins.resolve_task("mmnist-10-10")
    _, hparams, _ = resolve(spec, plugins.get_dataset("mmnist"), "paper", {**SMALL, **overrides})
    return spec, spec.build(task, hparams)


@pytest.fixture(scope="module")
def io():
    return torch.load(FIXTURES / "prednet_io.pt", weights_only=True)


def test_openstl_weights_reproduce_openstl_extrapolation(io):
    spec, model = build()
    checkpoint = read_checkpoint(FIXTURES / "prednet.pth")
    notes = load_weights(model, checkpoint, spec)
    assert notes["keys_loaded"] == len(model.state_dict())
    model.eval()
    with torch.no_grad():
        pred = model(io["x"], io["y"].shape[1])
    assert float((pred - io["output"]).abs().max()) <= 1e-5
    torch.manual_seed(5)
    _, fresh = build()
    with torch.no_grad():
        assert float((fresh.eval()(io["x"], 10) - io["output"]).abs().max()) > 1e-2


def test_openstl_weights_reproduce_openstl_training_loss(io):
    spec, model = build()
    load_weights(model, read_checkpoint(FIXTURES / "prednet.pth"), spec)
    with torch.no_grad():
        assert model.loss(io["x"], io["y"], 0).item() == pytest.approx(io["loss"], rel=1e-5)


def test_the_loss_weighs_upper_layers_only_when_asked():
    _, model = build()
    _, every = build(weight_mode="L_all")
    every.load_state_dict(model.state_dict())
    x, y = torch.rand(2, 3, 1, 64, 64), torch.rand(2, 3, 1, 64, 64)
    with torch.no_grad():
        assert every.loss(x, y, 0) > model.loss(x, y, 0)


def test_extrapolation_feeds_back_the_previous_prediction():
    """Past the observed frames, the frame fed at step t is the prediction made at step t-1."""
    _, model = build()
    model.eval()
    x = torch.rand(1, 4, 1, 64, 64)
    with torch.no_grad():
        two = model(x, 2)
        state, frame = model.initial_state(x[:, 0]), None
        for t in range(6):
            frame, state, _ = model.step(x[:, t] if t < 4 else frame, state)
        assert torch.equal(two[:, 1], frame)
        assert torch.equal(model(x, 1)[:, 0], two[:, 0])
    assert float(two.max()) <= 1.0 and float(two.min()) >= 0.0  # relu, then clamped at pixel_max


def test_frames_that_do_not_divide_say_what_to_change():
    spec = plugins.get_model("prednet")
    with pytest.raises(UserError, match="must divide by 16"):
        spec.build(Task("toy", 2, 2, (1, 40, 40)), spec.settings_for("paper", "mmnist"))


# OpenSTL's model zoo (v0.3.0 docs): 12.5 M parameters; FLOPs counted by fvcore on ONE frame
# (api/train.py's input_dummy for prednet is [1, 1, C, H, W]), so KTH's 3.4 G is one step at 128 x 128.
# (The Moving MNIST entry, 8.6 G, is ten times a step there; stbench counts every step of the rollout.)
def test_paper_config_matches_published_params_and_flops_per_step():
    spec = plugins.get_model("prednet")
    hparams = {k: v for k, v in spec.settings_for("paper", "mmnist").items() if k not in TRAIN_KEYS}
    with torch.device("meta"):
        mmnist = spec.build(Task("mmnist", 10, 10, (1, 64, 64)), hparams)
        kth = spec.build(Task("kth", 1, 1, (1, 128, 128)), hparams)
    assert count_params(mmnist) / 1e6 == pytest.approx(12.5, rel=0.02)
    assert count_macs(kth, Task("kth", 1, 1, (1, 128, 128))) / 2 / 1e9 == pytest.approx(3.4, rel=0.02)
    assert count_macs(mmnist, Task("mmnist", 10, 10, (1, 64, 64))) / 1e9 == pytest.approx(16.76, rel=0.01)
