"""What sets E3D-LSTM apart: input windows, the eidetic memory, the frozen global memory, the MSE + L1 loss,
strided gates, user errors, the quick schedule, and the paper profile's Params / FLOPs against the published."""
import pytest
import torch
import torch.nn.functional as F

import stbench_e3dlstm
from stbench import Task, UserError
from stbench.config import TRAIN_KEYS
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_convlstm import ScheduledSampling
from stbench_e3dlstm import E3DLSTM, WindowConv, recall


def registered_spec():
    specs = {}
    stbench_e3dlstm.stbench_register_models(register=lambda spec: specs.setdefault(spec.name, spec))
    return specs["e3dlstm"]


SPEC = registered_spec()
TASK = Task("toy", 3, 3, (1, 16, 16))
ARCH = dict(num_hidden=[8, 8], filter_size=3, stride=1, patch_size=4, layer_norm=False)
LATE = 10 ** 6


def model(**overrides):
    torch.manual_seed(0)
    return E3DLSTM(TASK, **dict(ARCH, **overrides), sampling=ScheduledSampling())


@pytest.mark.parametrize("stride", [1, 2])
def test_gate_convolution_returns_the_window_it_was_given(stride):
    """A (2, k, k) kernel without temporal padding leaves one slice; nearest resizing copies it over the window
    (and with stride 2 each strided output over a 2x2 block)."""
    conv = WindowConv(3, 5, 2, 3, stride)
    x = torch.randn(2, 3, 2, 8, 8)
    out = conv(x)
    assert out.shape == (2, 5, 2, 8, 8)
    assert torch.equal(out[:, :, 0], out[:, :, 1])
    if stride == 2:
        assert torch.equal(out[..., 0::2, 0::2], out[..., 1::2, 1::2])
    else:
        assert torch.allclose(out[:, :, 0], F.conv3d(x, conv.weight, padding=(0, 1, 1))[:, :, 0])


def test_each_step_sees_the_previous_and_the_current_input():
    net = model().eval()
    windows = []
    net.cells[0].conv_x.register_forward_hook(lambda module, args, out: windows.append(args[0]))
    x = torch.rand(1, 3, 1, 16, 16)
    with torch.no_grad():
        net(x, 2)
    patches = net.to_patches(x)
    assert len(windows) == 4 and all(w.shape == (1, 16, 2, 4, 4) for w in windows)
    assert torch.equal(windows[0][:, :, 0], torch.zeros_like(patches[:, 0]))  # nothing before frame 0
    for t in (1, 2):
        assert torch.equal(windows[t][:, :, 0], patches[:, t - 1]) and torch.equal(windows[t][:, :, 1], patches[:, t])


def test_predictions_depend_on_earlier_inputs_only():
    net = model().eval()
    x = torch.rand(1, 3, 1, 16, 16)
    changed = x.clone()
    changed[:, 2] = torch.rand(1, 16, 16)
    with torch.no_grad():
        before, _ = net.rollout(net.to_patches(x), 4)
        after, _ = net.rollout(net.to_patches(changed), 4)
    assert torch.equal(before[:, :2], after[:, :2])
    assert not torch.allclose(before[:, 2], after[:, 2])


def test_eidetic_memory_keeps_every_cell_state_from_the_initial_zeros_on():
    net = model().eval()
    seen = []
    net.cells[1].register_forward_hook(lambda module, args, out: seen.append((args[2], args[4])))
    with torch.no_grad():
        net(torch.rand(2, 3, 1, 16, 16), 3)
    tokens = 2 * 4 * 4  # window x grid per stored state
    for t, (cell, history) in enumerate(seen):
        assert history.shape == (2, (t + 1) * tokens, 8)
        assert torch.equal(history[:, -tokens:], cell.reshape(2, -1, 8))  # the current state is among them
    assert torch.equal(seen[-1][1][:, :tokens], torch.zeros(2, tokens, 8))


def test_recall_is_unscaled_softmax_attention_over_the_history():
    query = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1, 1)  # one token (C = 2)
    history = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    weights = torch.softmax(torch.tensor([1.0, 6.0]), dim=0)
    expected = weights[0] * history[0, 0] + weights[1] * history[0, 1]
    assert torch.allclose(recall(query, history).flatten(), expected)


def test_recall_reads_query_tokens_in_runs_of_c_values():
    """OpenSTL's layout: a channel-first [B, C, T, H, W] query is read as consecutive runs of C values."""
    query = torch.arange(8.0).view(1, 2, 2, 2, 1) / 8
    history = torch.randn(1, 3, 2)
    tokens = query.flatten().view(1, 4, 2)
    expected = torch.softmax(tokens @ history.transpose(1, 2), dim=2) @ history
    assert torch.allclose(recall(query, history), expected.view(query.shape))


def test_global_memory_stays_at_zero_as_in_both_references():
    """The cell hands on the M it received, so M's gate convolution only ever sees zeros: its weights change
    nothing and get zero gradients."""
    net = model()
    x, y = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        before = net.eval()(x, 3)
        for cell in net.cells:
            cell.conv_gm.weight.normal_()
        assert torch.equal(before, net(x, 3))
    net.train().loss(x, y, LATE).backward()
    assert all(cell.conv_gm.weight.grad.abs().max() == 0 for cell in net.cells)
    assert all(cell.conv_new_gm.weight.grad.abs().max() > 0 for cell in net.cells)


def test_loss_is_mse_plus_l1_over_every_next_frame_target():
    net = model()
    x, y = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    loss = net.loss(x, y, LATE)  # after the schedule: future inputs are the model's own predictions
    with torch.no_grad():
        predictions, _ = net.rollout(net.to_patches(x), 5)
    full = net.from_patches(predictions)
    target = torch.cat([x, y], dim=1)[:, 1:]
    assert loss.item() == pytest.approx((F.mse_loss(full, target) + F.l1_loss(full, target)).item(), rel=1e-5)


def test_strided_gates_and_layer_norm_run():
    net = model(stride=2, layer_norm=True).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 1, 16, 16), 4).shape == (2, 4, 1, 16, 16)


@pytest.mark.parametrize("overrides, message", [
    (dict(num_hidden=[8, 16]), "same width"),
    (dict(stride=0), "stride >= 1"),
    (dict(filter_size=0), "filter_size >= 1"),
    (dict(patch_size=3), "must divide"),
])
def test_user_errors_are_one_line(overrides, message):
    with pytest.raises(UserError, match=message):
        model(**overrides)


def test_quick_schedule_ends_at_40_percent_of_the_quick_budget():
    quick = SPEC.settings_for("quick", "mmnist")
    steps = 2 * 2000 // 16  # the shared quick budget
    sampling = ScheduledSampling(quick["sampling_start_value"], quick["sampling_changing_rate"],
                                 quick["sampling_stop_iter"])
    assert sampling.eta(int(0.4 * steps) - 1) == 0.0 and sampling.eta(int(0.4 * steps) - 2) > 0


# ----------------------------------------------------------------------------- published Params / FLOPs

def paper_model(task):
    hparams = {k: v for k, v in SPEC.settings_for("paper", task.dataset).items() if k not in TRAIN_KEYS}
    with torch.device("meta"):  # shapes only: paper-size models build and count in moments
        return SPEC.build(task, hparams)


def macs_by_steps(model, dataset, shape, steps):
    """MACs of ``steps`` recurrent steps from counts of one and two steps: every step costs the same
    convolutions ``a``, and step t (from 0) attends over t + 1 stored states at ``b`` each."""
    one = count_macs(model, Task(dataset, 1, 1, shape))
    two = count_macs(model, Task(dataset, 1, 2, shape))
    b = two - 2 * one
    a = one - b
    return steps * a + b * steps * (steps + 1) // 2


def test_macs_grow_as_the_step_formula_says():
    task = Task("toy", 3, 4, (1, 16, 16))
    net = model()
    assert count_macs(net, task) == macs_by_steps(net, "toy", (1, 16, 16), 6)


# task -> (frame shape, published params M, published FLOPs G (= MACs)); USTEP (TPAMI 2025) Tables II-V
# (= OpenSTL's model zoo), taxibj from OpenSTL's traffic benchmark table.
PUBLISHED = {
    "mmnist-10-10": ((1, 64, 64), 51.0, 298.9),
    "kth-10-20": ((1, 128, 128), 53.5, 217.0),
    "kth-10-40": ((1, 128, 128), 53.5, 498.0),
    "human-4-4": ((3, 256, 256), 60.9, 542.0),
    "weather-12-12": ((1, 32, 64), 51.1, 169.0),
    "taxibj-4-4": ((2, 32, 32), 50.99, 98.19),
    "kitticaltech-10-1": ((3, 128, 160), 54.9, 1004.0),
}
# OpenSTL's own code (c74deb5) counted with fvcore as OpenSTL does gives 1039.84 G on kitticaltech (and
# 51,347,456 parameters on mmnist); the published 1004 G is 3.4% below what that code computes.
OPENSTL_CODE_GMACS = {"kitticaltech-10-1": 1039.84}


@pytest.mark.parametrize("task_name", sorted(PUBLISHED))
def test_paper_profile_matches_the_published_figures(task_name):
    shape, params_m, gmacs = PUBLISHED[task_name]
    dataset, t_in, t_out = task_name.rsplit("-", 2)
    net = paper_model(Task(dataset, int(t_in), int(t_out), shape))
    assert count_params(net) / 1e6 == pytest.approx(params_m, rel=0.02)
    macs = macs_by_steps(net, dataset, shape, int(t_in) + int(t_out) - 1)
    assert macs / 1e9 == pytest.approx(OPENSTL_CODE_GMACS.get(task_name, gmacs), rel=0.02 if
                                       task_name not in OPENSTL_CODE_GMACS else 1e-3)


def test_mmnist_counts_every_step_as_published():
    task = Task("mmnist", 10, 10, (1, 64, 64))
    net = paper_model(task)
    assert count_params(net) == 51_347_456  # OpenSTL's E3DLSTM_Model, parameter for parameter
    assert count_macs(net, task) / 1e9 == pytest.approx(298.9, rel=1e-3)
