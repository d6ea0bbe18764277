"""The rollout contract, checked on every installed model built on RecurrentPredictor (smoke sizes)."""
import pytest
import torch
import torch.nn.functional as F

from stbench import Task, plugins
from stbench.config import TRAIN_KEYS, resolve
from stbench_convlstm import RecurrentPredictor

SHAPE = (1, 16, 16)
LATE = 10_000  # a step after every smoke schedule has ended: no teacher forcing left


def build(name, task, **changes):
    """The model at smoke size; ``changes`` apply to the hyper-parameters the model declares."""
    spec = plugins.get_model(name)
    hparams = {k: v for k, v in spec.settings_for("smoke", task.dataset).items() if k not in TRAIN_KEYS}
    hparams.update({k: v for k, v in changes.items() if k in hparams})
    torch.manual_seed(0)
    return spec.build(task, hparams)


# the models built on RecurrentPredictor; those of plugins that are not installed are left out
MODELS = [name for name in ("convlstm", "predrnn", "predrnnpp", "predrnnv2") if name in plugins.models()]


@pytest.mark.parametrize("name", MODELS)
def test_the_model_is_a_registered_recurrent_predictor(name):
    assert plugins.get_model(name).family == "recurrent"
    assert isinstance(build(name, Task("toy", 2, 2, SHAPE)), RecurrentPredictor)


def teacher_free_predictions(model, frames, t_in):
    """Predictions of frames 1..T-1 from forward alone: frame k < t_in from the first k frames."""
    early = [model(frames[:, :k], 1) for k in range(1, t_in)]
    return torch.cat(early + [model(frames[:, :t_in], frames.shape[1] - t_in)], dim=1)


@pytest.mark.parametrize("name", MODELS)
def test_no_ground_truth_future_reaches_predictions(name):
    t_in, t_out = 3, 4
    model = build(name, Task("toy", t_in, t_out, SHAPE), decouple_beta=0.0)  # v2: the loss is the MSE alone
    x, y = torch.rand(2, t_in, *SHAPE), torch.rand(2, t_out, *SHAPE)
    with torch.no_grad():
        # forward sees x only; its predictions are causal: a longer horizon extends, never changes, them
        short, long = model(x, 2), model(x, t_out)
        assert torch.equal(short, long[:, :2])
        # and nothing from a teacher-forced training pass lingers for the next forward
        model.loss(x, y, 0)
        assert torch.equal(model(x, t_out), long)
        for future in (y, torch.rand_like(y), torch.zeros_like(y)):
            frames = torch.cat([x, future], dim=1)
            expected = F.mse_loss(teacher_free_predictions(model, frames, t_in), frames[:, 1:])
            # once the schedule has ended, the training loss is the loss of those same teacher-free predictions
            assert torch.allclose(model.loss(x, future, LATE), expected, rtol=1e-5, atol=1e-7)
        # while teacher forcing is on, the true future does reach the inputs
        torch.manual_seed(0)
        frames = torch.cat([x, y], dim=1)
        forced = F.mse_loss(teacher_free_predictions(model, frames, t_in), frames[:, 1:])
        assert not torch.allclose(model.loss(x, y, 0), forced)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("layer_norm", [0, 1])
def test_every_parameter_gets_a_gradient_from_the_loss(name, layer_norm):
    model = build(name, Task("toy", 3, 3, SHAPE), layer_norm=layer_norm)
    model.loss(torch.rand(2, 3, *SHAPE), torch.rand(2, 3, *SHAPE), 0).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused, f"parameters the loss never uses: {unused}"


@pytest.mark.parametrize("name", MODELS)
def test_quick_schedules_are_scaled_to_the_steps_that_run(name):
    """The paper ends teacher forcing at 50k of mmnist's 125k steps (40%); quick keeps that proportion."""
    train, hparams = resolve(plugins.get_model(name), plugins.get_dataset("mmnist"), "quick", {})[:2]
    steps = train["epochs"] * (train["train_samples"] // train["batch_size"])
    if "sampling_stop_iter" in hparams:
        assert hparams["sampling_stop_iter"] == round(0.4 * steps)
        assert hparams["sampling_start_value"] - hparams["sampling_changing_rate"] * hparams["sampling_stop_iter"] \
            == pytest.approx(0.0, abs=1e-3)
    else:
        assert (hparams["r_sampling_step_1"], hparams["r_sampling_step_2"]) == (round(0.2 * steps), round(0.4 * steps))
        assert hparams["r_exp_alpha"] == pytest.approx(0.04 * steps, abs=1)
