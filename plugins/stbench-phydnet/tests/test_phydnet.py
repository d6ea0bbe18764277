"""PhyDNet: OpenSTL's weights and losses reproduced, the moment conversion and constraint, teacher forcing,
the published Params / FLOPs and the errors a user can cause."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import stbench_phydnet
from stbench import Task, UserError
from stbench.checkpoints import load_weights, read_checkpoint
from stbench.config import TRAIN_KEYS
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_phydnet import kernel_to_moments, moment_loss, moment_targets, moments_to_kernel

FIXTURES = Path(__file__).parent / "fixtures"
# the fixture's sizes (tests/fixtures/README.md): E width 16 (32 features), PhyCell 16, ConvLSTM 32,16
FIXTURE_SIZES = dict(enc_channels=16, hid_channels=16, convlstm_hidden=[32, 16])
MMNIST = Task("mmnist", 10, 10, (1, 64, 64))


def phydnet_spec():
    specs = []
    stbench_phydnet.stbench_register_models(register=specs.append)
    (spec,) = specs
    return spec


SPEC = phydnet_spec()


def hparams(profile, dataset, **overrides):
    declared = {k: v for k, v in SPEC.settings_for(profile, dataset).items() if k not in TRAIN_KEYS}
    return {**declared, **overrides}


def fixture_model(**overrides):
    return SPEC.build(MMNIST, hparams("paper", "mmnist", **{**FIXTURE_SIZES, **overrides}))


@pytest.fixture(autouse=True)
def one_thread():
    """The reference outputs were computed on one thread; the same summation order reproduces them exactly
    (two threads reorder float32 sums, and a rollout carries that rounding from step to step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_reproduces(pred, expected):
    """Within 2e-5 of the output's scale. On the CPU the fixture was made on (AMD EPYC, one thread) the same
    operations in the same order reproduce it bit for bit; another CPU's kernels (an Intel Xeon with AMX) round
    float32 sums differently, about 1e-7 per pass, and the 20-step recurrent rollout carries that rounding from
    step to step: 1.1e-5 at the last frame there."""
    assert pred.shape == expected.shape
    assert float((pred - expected).abs().max()) <= 2e-5 * max(1.0, float(expected.abs().max()))


@pytest.fixture(scope="module")
def clips():
    return torch.load(FIXTURES / "input.pt", weights_only=True)


@pytest.fixture(scope="module")
def reference():
    return torch.load(FIXTURES / "phydnet_output.pt", weights_only=True)


@pytest.fixture()
def loaded():
    model = fixture_model()
    notes = load_weights(model, read_checkpoint(FIXTURES / "phydnet.ckpt"), SPEC)
    return model, notes


# -- OpenSTL fidelity ------------------------------------------------------------------------------

def test_openstl_weights_reproduce_openstl_predictions(loaded, clips, reference):
    model, notes = loaded
    model.eval()
    with torch.no_grad():
        pred = model(clips["x"], 10)
    assert_reproduces(pred, reference["prediction"])
    assert notes["format"] == "openstl-lightning" and notes["keys_loaded"] == len(model.state_dict())
    # the weights matter: a fresh draw of the same model is far from OpenSTL's output
    torch.manual_seed(123)
    fresh = fixture_model().eval()
    with torch.no_grad():
        assert float((fresh(clips["x"], 10) - reference["prediction"]).abs().max()) > 1e-2


def test_duplicate_and_constant_openstl_tensors_are_the_only_ones_dropped(loaded):
    _, notes = loaded
    dropped = [item["key"] for item in notes["dropped"]]
    assert dropped and all(key.startswith(("encoder.phycell.", "encoder.convcell.", "k2m.")) for key in dropped)
    assert sorted(k for k in dropped if k.startswith("k2m.")) == ["k2m._M0", "k2m._M1", "k2m._invM0", "k2m._invM1"]


def test_original_code_checkpoint_layout_loads_too(tmp_path, clips, reference):
    """vincent-leguen/PhyDNet saves its EncoderRNN's state dict: OpenSTL's `encoder.*` keys without the prefix."""
    state = read_checkpoint(FIXTURES / "phydnet.ckpt").state
    original = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    assert "phycell.cell_list.0.F.conv1.weight" in original and "encoder_E.c1.main.0.weight" in original
    torch.save(original, tmp_path / "encoder_phydnet.pth")
    model = fixture_model()
    notes = load_weights(model, read_checkpoint(tmp_path / "encoder_phydnet.pth"), SPEC)
    assert notes["dropped"] == []
    model.eval()
    with torch.no_grad():
        assert_reproduces(model(clips["x"], 10), reference["prediction"])


@pytest.mark.parametrize("epoch, key", [(0, "loss_teacher_forcing_1"), (10 ** 6, "loss_teacher_forcing_0")])
def test_training_loss_equals_openstl_model_loss(loaded, clips, reference, epoch, key):
    """OpenSTL's PhyDNet_Model.forward(x, y, constraints, ratio) with ratio 1 (always teacher forcing) and 0."""
    model, _ = loaded
    model.on_epoch_start(epoch)
    loss = model.loss(clips["x"], clips["y"], 0)
    assert loss.item() == pytest.approx(reference[key].item(), rel=1e-6)
    assert moment_loss(model.phycell.phi[0].weight).item() == pytest.approx(reference["moment_loss"].item(), rel=1e-6)


# -- moments ---------------------------------------------------------------------------------------

def test_kernel_moment_conversion_matches_openstl_k2m_and_m2k(reference):
    for size in ("7x7", "5x3"):
        moments = kernel_to_moments(reference[f"kernels_{size}"])
        torch.testing.assert_close(moments, reference[f"moments_{size}"], rtol=0, atol=1e-10)
    torch.testing.assert_close(moments_to_kernel(reference["kernels_7x7"]), reference["m2k_7x7"], rtol=0, atol=1e-9)


def test_moments_and_kernels_convert_both_ways():
    kernels = torch.randn(3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(moments_to_kernel(kernel_to_moments(kernels)), kernels)


def test_second_difference_kernel_has_the_single_moment_of_a_second_derivative():
    kernel = torch.zeros(3, 3, dtype=torch.float64)
    kernel[:, 1] = torch.tensor([1.0, -2.0, 1.0])  # along the row axis
    expected = torch.zeros(3, 3, dtype=torch.float64)
    expected[2, 0] = 1.0  # d^2 / dx_row^2
    torch.testing.assert_close(kernel_to_moments(kernel), expected)


def test_moment_loss_is_zero_only_for_filters_with_the_target_moments():
    k, channels = 7, 3
    ideal = moments_to_kernel(moment_targets(k, torch.float64))  # [49, 7, 7]
    weight = ideal[:, None].expand(k * k, channels, k, k).float()
    assert moment_loss(weight).item() == pytest.approx(0.0, abs=1e-8)
    assert moment_loss(weight + 0.01 * torch.randn_like(weight)).item() > 1e-6
    # it is a sum over input channels of per-channel mean squared errors
    perturbed = weight.clone()
    perturbed[:, 0] += 0.1
    per_channel = [F.mse_loss(kernel_to_moments(perturbed[:, c].double()).float(), moment_targets(k))
                   for c in range(channels)]
    assert moment_loss(perturbed).item() == pytest.approx(sum(per_channel).item(), rel=1e-6)


def test_moment_loss_trains_the_physical_filters():
    model = fixture_model()
    model.loss(torch.rand(1, 3, 1, 64, 64), torch.rand(1, 2, 1, 64, 64), 0).backward()
    assert model.phycell.phi[0].weight.grad.abs().sum() > 0


# -- teacher forcing -------------------------------------------------------------------------------

def test_teacher_forcing_ratio_decays_per_epoch_and_stops_at_zero():
    model = fixture_model()
    assert model.teacher_forcing_ratio == 1.0
    for epoch, ratio in ((0, 1.0), (100, 0.7), (200, 0.4), (333, 0.001), (400, 0.0)):
        model.on_epoch_start(epoch)
        assert model.teacher_forcing_ratio == pytest.approx(ratio, abs=1e-12)


def test_quick_teacher_forcing_spans_the_paper_ratios_in_two_epochs():
    """quick trains 2 epochs; its ratios start and end where OpenSTL's 200 mmnist epochs do, with the same mean."""
    def ratios(profile, epochs):
        model = SPEC.build(MMNIST, hparams(profile, "mmnist"))
        seen = []
        for epoch in range(epochs):
            model.on_epoch_start(epoch)
            seen.append(model.teacher_forcing_ratio)
        return seen

    paper, quick = ratios("paper", SPEC.train_for("paper", "mmnist")["epochs"]), ratios("quick", 2)
    assert len(paper) == 200 and quick[0] == paper[0] == 1.0
    assert quick[-1] == pytest.approx(paper[-1], abs=0.01)
    assert sum(quick) / len(quick) == pytest.approx(sum(paper) / len(paper), abs=0.01)


def manual_outputs(model, x, y, truth_inputs: bool):
    """Every next-frame prediction, step by step: inputs after T_in are y (teacher forcing) or predictions."""
    state, frame, outputs = model.initial_state(x[:, 0]), None, []
    frames = torch.cat([x, y], dim=1)
    for t in range(frames.shape[1] - 1):
        if t < x.shape[1] or truth_inputs:
            frame = frames[:, t]
        frame, state = model.step(frame, state)
        outputs.append(frame)
    return torch.stack(outputs, dim=1)


def frame_loss(outputs, x, y):
    """The reference's sum over steps of per-frame MSEs."""
    targets = torch.cat([x[:, 1:], y], dim=1)
    return sum(F.mse_loss(outputs[:, t], targets[:, t]) for t in range(targets.shape[1]))


def test_one_teacher_forcing_draw_per_batch_decides_every_future_input():
    torch.manual_seed(0)
    model = fixture_model()
    x, y = torch.rand(2, 4, 1, 64, 64), torch.rand(2, 3, 1, 64, 64)
    with torch.no_grad():
        moments = moment_loss(model.phycell.phi[0].weight)
        forced_outputs, free_outputs = manual_outputs(model, x, y, True), manual_outputs(model, x, y, False)
        assert torch.equal(free_outputs[:, -3:], model(x, 3))  # free running is what inference does
        forced = (frame_loss(forced_outputs, x, y) + moments).item()
        free = (frame_loss(free_outputs, x, y) + moments).item()
        model.on_epoch_start(10 ** 6)
        assert model.loss(x, y, 0).item() == pytest.approx(free, rel=1e-6)
        model.on_epoch_start(0)
        assert model.loss(x, y, 0).item() == pytest.approx(forced, rel=1e-6)
        model.teacher_forcing_ratio = 0.5
        draws = [model.loss(x, y, 0).item() for _ in range(16)]
    assert abs(forced - free) > 1e-4
    # each batch is either wholly teacher forced or wholly free running, never a mixture
    assert all(min(abs(d - forced), abs(d - free)) < 1e-5 for d in draws)
    assert {abs(d - forced) < abs(d - free) for d in draws} == {True, False}


def test_inference_feeds_back_its_own_predictions():
    torch.manual_seed(0)
    model = fixture_model().eval()
    x = torch.rand(1, 4, 1, 64, 64)
    with torch.no_grad():
        long = model(x, 5)
        short = model(x, 2)
        # a longer horizon continues the same rollout
        assert torch.equal(long[:, :2], short)
        continued = model(torch.cat([x, long[:, :2]], dim=1), 3)
    torch.testing.assert_close(continued, long[:, 2:])


def test_one_observed_frame_starts_from_zero_state():
    """The references would reuse a stale state with T_in = 1; ours starts every call from zeros."""
    torch.manual_seed(0)
    model = fixture_model().eval()
    x = torch.rand(2, 1, 1, 64, 64)
    with torch.no_grad():
        first = model(x, 3)
        model(torch.rand(2, 5, 1, 64, 64), 2)
        assert torch.equal(model(x, 3), first)
    assert torch.isfinite(model.loss(x, torch.rand(2, 3, 1, 64, 64), 0))


# -- published figures -----------------------------------------------------------------------------

# OpenSTL model zoo (docs/en/model_zoos at c74deb5): Params (M) / FLOPs (G, MACs). video_benchmarks.md
# (mmnist, mfmnist and mmnist_cifar share 3.1 / 15.3; kth 10->20 also in REFERENCE.md section 7; kitticaltech
# 10->1), weather_benchmarks.md (t2m 5.625 deg) and traffic_benchmarks.md (taxibj). Its human row (4.2M /
# 19.1G) is not what PhyDNet_Model at c74deb5 builds (3.09M, see README.md) and is left out.
PUBLISHED = [("mmnist", (1, 64, 64), 10, 10, 3.1, 15.3), ("kth", (1, 128, 128), 10, 20, 3.1, 93.6),
             ("kitticaltech", (3, 128, 160), 10, 1, 3.1, 40.4), ("weather", (1, 32, 64), 12, 12, 3.09, 36.8),
             ("taxibj", (2, 32, 32), 4, 4, 3.09, 5.60)]


@pytest.mark.parametrize("dataset, shape, t_in, t_out, params_m, gmacs", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_paper_configs_match_published_params_and_flops(dataset, shape, t_in, t_out, params_m, gmacs):
    task = Task(dataset, t_in, t_out, shape)
    with torch.device("meta"):
        model = SPEC.build(task, hparams("paper", dataset))
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert count_macs(model, task) / 1e9 == pytest.approx(gmacs, rel=0.02)


def test_paper_sizes_are_openstl_fixed_sizes():
    with torch.device("meta"):
        model = SPEC.build(MMNIST, hparams("paper", "mmnist"))
        human = SPEC.build(Task("human", 4, 4, (3, 256, 256)), hparams("paper", "human"))
    assert tuple(model.phycell.phi[0].weight.shape) == (49, 64, 7, 7)
    assert [cell.hidden for cell in model.convlstm] == [128, 128, 64]
    assert model.grid(torch.zeros(1, 1, 64, 64)) == (16, 16)
    # what OpenSTL's PhyDNet_Model (c74deb5) builds for in_shape (10, 1, 64, 64) and (4, 3, 256, 256)
    assert (count_params(model), count_params(human)) == (3_091_732, 3_092_886)


# -- user errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, words", [
    (dict(patch_size=3), "patch_size must be 2 or 4"),
    (dict(enc_channels=24), "enc_channels must be a positive multiple of 16"),
    (dict(hid_channels=8, convlstm_hidden=[8]), "hid_channels must be a positive multiple of 16"),
    (dict(convlstm_hidden=[32, 32]), "convlstm_hidden must end with hid_channels (16)"),
    (dict(phycell_kernel=4), "phycell_kernel must be an odd number"),
    (dict(teacher_forcing_decay=-0.1), "teacher_forcing_decay must be >= 0"),
])
def test_bad_sizes_say_what_to_change(overrides, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        fixture_model(**overrides)


def test_frames_that_do_not_divide_say_what_to_change():
    with pytest.raises(UserError, match="patch_size 4 must divide the frame size"):
        SPEC.build(Task("toy", 4, 4, (1, 30, 30)), hparams("smoke", "toy"))
