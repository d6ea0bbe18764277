"""USTEP: partition, gates, Algorithms 1 and 2, the cross-segment ablation and the paper's counts."""
import copy

import pytest
import torch

from stbench import Task
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_ustep import CrossSegmentGates, USTEPModel, default_delta_t, partition, segmentation

TINY = dict(hid_s=4, hid_t=16, n_s=2, n_t=2)


def tiny(t_in=10, t_out=10, kind="tau", shape=(1, 16, 16), **options):
    torch.manual_seed(0)
    return USTEPModel(Task("toy", t_in, t_out, shape), translator=kind, **{**TINY, **options}).eval()


def frames(b, t, shape=(1, 16, 16), seed=1):
    return torch.rand((b, t) + tuple(shape), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ temporal scale sets

def test_paper_delta_t_rule():
    assert default_delta_t(10, 10) == 5 and default_delta_t(10, 40) == 5 and default_delta_t(10, 1) == 5
    assert default_delta_t(4, 4) == 2 and default_delta_t(4, 1) == 2 and default_delta_t(5, 5) == 2


@pytest.mark.parametrize("length, delta_t, delta_T, n_u, pad, k", [
    (20, 5, 10, 4, 0, 2),   # Fig. 3's shape: |V| = |U| - 1
    (8, 2, 4, 4, 0, 2),     # the 4 -> 4 example of Fig. 3
    (12, 5, 12, 3, 3, 3),   # WeatherBench: 12 frames do not fill 5-frame segments
    (13, 5, 13, 3, 2, 3),   # SEVIR
    (11, 5, 10, 3, 4, 2),   # Caltech 10 -> 1 as one sequence
    (10, 1, 10, 10, 0, 10),
    (10, 10, 10, 1, 0, 1),
    (7, 3, 4, 3, 2, 2),
])
def test_partition_counts_and_padding(length, delta_t, delta_T, n_u, pad, k):
    x = torch.arange(1, length + 1, dtype=torch.float32).view(1, length, 1).expand(2, length, 3)
    u, v = partition(x, delta_t, delta_T)
    assert u.shape == (2, n_u, delta_t, 3)
    assert v.shape == (2, n_u - k + 1, k * delta_t, 3)
    flat = u.reshape(2, -1, 3)[0, :, 0]
    assert torch.all(flat[:pad] == 0), "the pad goes in front"
    assert torch.equal(flat[pad:], torch.arange(1, length + 1, dtype=torch.float32)), "frames keep their order"
    for i in range(v.shape[1]):  # macro segment i = micro segments i..i+k-1, ending with U_{i+k-1}
        assert torch.equal(v[:, i], u[:, i:i + k].reshape(2, k * delta_t, 3))


def test_segmentation_of_tasks():
    seg = segmentation(10, 10)  # mmnist: 2 observed + 2 predicted segments, one macro segment = the input
    assert (seg.delta_t, seg.k, seg.pad, seg.n_observed, seg.n_predicted, seg.steps) == (5, 2, 0, 2, 2, 2)
    assert segmentation(10, 40).steps == 8
    seg = segmentation(12, 12)
    assert (seg.pad, seg.k, seg.n_predicted) == (3, 3, 3)
    seg = segmentation(10, 10, delta_t=1)
    assert (seg.k, seg.first_step, seg.steps) == (10, 9, 10)
    seg = segmentation(10, 10, delta_t=2, delta_T=4)  # a macro segment shorter than the input: observation steps
    assert (seg.k, seg.first_step, seg.steps) == (2, 1, 8)


# ------------------------------------------------------------------ cross segment-level gates

def test_gate_shapes_and_zero_states():
    gates = CrossSegmentGates(8, kernel_size=3)
    u, v = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    h_v = gates.macro(v, None)
    assert torch.equal(h_v, v), "h_V starts at zero: h_V = V"
    h_u = gates.micro(u, None, h_v)
    assert h_u.shape == (2, 8, 5, 6)
    h_v2 = gates.macro(v, h_v)
    h_u2 = gates.micro(u, h_u, h_v2)
    assert h_v2.shape == h_u2.shape == (2, 8, 5, 6)
    g = torch.sigmoid(gates.context(v))  # Eq. 5 as written
    assert torch.allclose(h_v2, v + g * h_v)
    m, c = torch.sigmoid(gates.historical(u)), torch.sigmoid(gates.cross(u))  # Eq. 6 as written
    assert torch.allclose(h_u2, u + m * h_u + c * h_v2)
    without = CrossSegmentGates(8, cross_segment=False)
    assert not hasattr(without, "context") and not hasattr(without, "cross")
    assert torch.equal(without.micro(u, None, None), u)


# ------------------------------------------------------------------ Algorithms 1 and 2

@pytest.mark.parametrize("kind", ["tau", "incepu", "uniformer"])
@pytest.mark.parametrize("t_in, t_out", [(10, 10), (10, 20), (10, 1), (4, 4), (12, 12), (3, 7)])
def test_output_shapes_equal_extended_reduced(kind, t_in, t_out):
    model = tiny(t_in, t_out, kind, shape=(2, 16, 12))
    x = frames(2, t_in, (2, 16, 12))
    with torch.no_grad():
        assert model(x, t_out).shape == (2, t_out, 2, 16, 12)
        assert model(x, t_out + 3).shape == (2, t_out + 3, 2, 16, 12), "any t_out at inference"


@pytest.mark.parametrize("t_in, t_out, delta_t", [(10, 10, None), (10, 13, 2), (12, 12, None), (10, 10, 1)])
def test_training_pass_is_the_rollout_fed_its_own_predictions(t_in, t_out, delta_t):
    """Algorithm 1 on (x, forward(x)) reproduces forward(x): the two algorithms are one model."""
    model = tiny(t_in, t_out, delta_t=delta_t)
    x = frames(2, t_in)
    with torch.no_grad():
        rollout = model(x, t_out)
        pred, target = model.predict_teacher_forced(x, rollout)
    assert torch.equal(target, rollout)
    assert torch.allclose(pred, rollout, atol=1e-5)


def test_loss_covers_every_predicted_segment():
    model = tiny(10, 10, delta_t=2, delta_T=4)  # 4 observation steps reconstruct observed segments too
    x, y = frames(2, 10), frames(2, 10, seed=2)
    pred, target = model.predict_teacher_forced(x, y)
    assert pred.shape == target.shape == (2, 16, 1, 16, 16)
    assert torch.equal(target, torch.cat([x, y], 1)[:, 4:])


# ------------------------------------------------------------------ the cross-segment ablation (Table VII)

def test_without_cross_segment_the_macro_path_has_no_influence():
    model = tiny(10, 10, cross_segment=False)
    assert not hasattr(model, "f_v"), "no macro module"
    assert not any("context" in n or "cross." in n for n, _ in model.named_parameters())
    x = frames(2, 10)
    perturbed = x.clone()
    perturbed[:, :5] = frames(2, 5, seed=7)  # frames only the macro segment sees (U_1 is in V_1 alone)
    with torch.no_grad():
        assert torch.equal(model(x, 10), model(perturbed, 10))
        reference = model(x, 10)
        for name, p in model.named_parameters():  # every weight that remains is on the micro path
            assert name.split(".")[0] in {"encoder", "f_u", "gates", "readout", "decoder"}, name
        assert torch.equal(model(x, 10), reference)

    with_cross = tiny(10, 10, cross_segment=True)
    with torch.no_grad():
        assert not torch.equal(with_cross(x, 10), with_cross(perturbed, 10)), "with it, the macro segment matters"
        changed = copy.deepcopy(with_cross)
        changed.f_v.embed.weight.add_(0.5)
        assert not torch.equal(with_cross(x, 10), changed(x, 10))


def test_options_are_checked():
    from stbench import UserError

    with pytest.raises(UserError, match="delta_t"):
        tiny(delta_t=0)
    with pytest.raises(UserError, match="cross_segment"):
        tiny(cross_segment="no")
    with pytest.raises(UserError, match="multiples of 2"):
        tiny(shape=(1, 15, 16))
    with pytest.raises(ValueError, match="built for"):
        tiny()(frames(1, 9), 10)


# ------------------------------------------------------------------ registration and the paper's counts

def paper_build(name, task=Task("mmnist", 10, 10, (1, 64, 64)), **override):
    """The registered model at its ``paper`` settings, on the meta device (shapes only: no memory, no init cost)."""
    from stbench import plugins

    spec = plugins.get_model(name)
    with torch.device("meta"):
        return spec.build(task, {**spec.settings_for("paper", task.dataset), **override})


def paper_model(name, task=Task("mmnist", 10, 10, (1, 64, 64)), **override):
    """(params in M, MACs in G) of the registered model at its ``paper`` settings."""
    model = paper_build(name, task, **override)
    return count_params(model) / 1e6, count_macs(model, task) / 1e9


def test_registered_models():
    from stbench import plugins

    for name in ("ustep", "ustep-simvp", "ustep-uniformer"):
        spec = plugins.get_model(name)
        assert spec.family == "hybrid"
        assert {"delta_t", "cross_segment", "hid_s", "hid_t", "n_s", "n_t"} <= spec.known_keys(), "--set reaches them"
        for profile in ("smoke", "quick", "paper"):
            assert spec.settings_for(profile, "mmnist"), (name, profile)


@pytest.mark.parametrize("name, params, macs", [
    ("ustep", 18.9, 17.7), ("ustep-simvp", 24.4, 21.9), ("ustep-uniformer", 17.8, 16.8)])
def test_paper_profile_lands_on_table_2(name, params, macs):
    p, g = paper_model(name)
    assert abs(p / params - 1) <= 0.10, f"{name}: {p:.2f}M vs {params}M"
    assert abs(g / macs - 1) <= 0.10, f"{name}: {g:.2f}G vs {macs}G"


KTH20, KTH40 = Task("kth", 10, 20, (1, 128, 128)), Task("kth", 10, 40, (1, 128, 128))
HUMAN, WEATHER = Task("human", 4, 4, (3, 256, 256)), Task("weather", 12, 12, (1, 32, 64))
CALTECH, SEVIR = Task("kitticaltech", 10, 1, (3, 128, 160)), Task("sevir", 13, 12, (1, 384, 384))
UCF = Task("ucfsports", 4, 1, (3, 480, 720))


@pytest.mark.parametrize("name, task, params, macs", [  # Tables II-VI: (M, G) of each USTEP variant
    ("ustep", KTH20, 12.8, 107.0), ("ustep-simvp", KTH20, 16.4, 137.0), ("ustep-uniformer", KTH20, 12.0, 101.0),
    ("ustep", KTH40, 12.8, 214.0), ("ustep-simvp", KTH40, 16.4, 274.0), ("ustep-uniformer", KTH40, 12.0, 202.0),
    ("ustep", HUMAN, 3.7, 66.2), ("ustep-simvp", HUMAN, 4.5, 63.2), ("ustep-uniformer", HUMAN, 3.4, 76.6),
    ("ustep", WEATHER, 3.6, 8.2), ("ustep-simvp", WEATHER, 4.4, 9.9), ("ustep-uniformer", WEATHER, 3.3, 7.7),
    ("ustep", CALTECH, 5.1, 85.3), ("ustep-simvp", CALTECH, 6.3, 105.0), ("ustep-uniformer", CALTECH, 4.7, 79.6),
    ("ustep", SEVIR, 13.5, 277.0), ("ustep-simvp", SEVIR, 13.1, 267.0), ("ustep-uniformer", SEVIR, 12.2, 253.0),
    ("ustep", UCF, 6.3, 262.0), ("ustep-simvp", UCF, 6.1, 251.0), ("ustep-uniformer", UCF, 5.6, 235.0),
], ids=lambda value: getattr(value, "name", value))
def test_paper_profile_lands_on_the_other_tables(name, task, params, macs):
    p, g = paper_model(name, task)
    assert abs(p / params - 1) <= 0.10, f"{name} {task}: {p:.2f}M vs {params}M"
    assert abs(g / macs - 1) <= 0.10, f"{name} {task}: {g:.2f}G vs {macs}G"


def test_delta_t_follows_table_7():
    for delta_t, macs in ((1, 52.5), (2, 30.8), (5, 17.7), (10, 13.4)):
        _, g = paper_model("ustep", delta_t=delta_t)
        assert abs(g / macs - 1) <= 0.15, f"delta_t={delta_t}: {g:.2f}G vs {macs}G"
    p1, g1 = paper_model("ustep", delta_t=1, delta_T=1)  # Table VII: 18.5M / 89.8G
    assert abs(p1 / 18.5 - 1) <= 0.10 and abs(g1 / 89.8 - 1) <= 0.15, (p1, g1)


def test_without_cross_segment_lands_on_table_7():
    """Table VII's "w/o cross segment": 17.4M / 13.1G. The FLOPs are those of a model that never runs the macro
    module f_v (nor the context and cross-segment gates); the 17.4M are reached only if f_v is still counted,
    as an unused module would be. We build what runs (README): our count + f_v's must land on 17.4M."""
    p, g = paper_model("ustep", cross_segment=False)
    assert abs(g / 13.1 - 1) <= 0.10, f"{g:.2f}G vs 13.1G"
    full = paper_build("ustep")
    unused_macro = count_params(full.f_v) / 1e6
    assert abs((p + unused_macro) / 17.4 - 1) <= 0.05, f"{p:.2f}M + f_v {unused_macro:.2f}M vs 17.4M"
    assert 9.0 <= p <= 10.0, f"{p:.2f}M: what exists without the macro path"

