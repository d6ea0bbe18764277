"""MCVD: the authors' weights reproduce their score network, loss, samplers and rollout; our schedule,
initialisation, parameter counts and the deterministic sampling; user errors."""
from pathlib import Path

import pytest
import torch

import stbench_mcvd
from stbench import Task, UserError
from stbench.checkpoints import load_weights, read_checkpoint
from stbench.models import count_params
from stbench.profiling import _count, count_macs
from stbench_mcvd.layers import fir_downsample, fir_upsample, variance_scaling_uniform
from stbench_mcvd.model import (MCVDModel, build_mcvd, denoising_loss, sample_frames,
                                sampling_schedule)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def one_thread():
    """The reference outputs were computed on one thread; the same summation order reproduces them exactly
    (two threads reorder float32 sums, and a rollout carries that rounding from step to step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def registered_spec():
    specs = []
    stbench_mcvd.stbench_register_models(register=specs.append)
    return specs[0]


SPEC = registered_spec()
# The fixture network (tests/fixtures/README.md): 16x16 frames, 3 condition frames, 2 frames per block.
FIXTURE_TASK = Task("mmnist", 6, 5, (1, 16, 16))
FIXTURE_HPARAMS = dict(SPEC.hparams_for("smoke", "mmnist"), ngf=8, ch_mult=[1, 2], num_res_blocks=1,
                       attn_resolutions=[8], n_head_channels=8, num_frames=2, num_frames_cond=3, spade_dim=4)


def reference_model(variant):
    model = build_mcvd(FIXTURE_TASK, dict(FIXTURE_HPARAMS, spade=variant == "spatin"))
    notes = load_weights(model, read_checkpoint(FIXTURES / f"mcvd_{variant}_checkpoint.pt"), SPEC)
    return model.eval(), notes


def outputs(variant):
    return torch.load(FIXTURES / f"mcvd_{variant}_outputs.pt", weights_only=True)


# Chains of denoising steps carry float32 rounding from step to step, and the rounding depends on the CPU's
# kernels: the fixtures were made on an AMD EPYC (AVX-512); on an Intel Xeon with AMX the 3-step DDPM chain
# and the blockwise rollout differ by up to 5.4e-5 of their scale (single network passes stay below 1e-5).
CHAIN = 1e-4


def assert_close(ours, theirs, rel=1e-5):
    scale = theirs.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    assert diff <= rel * max(scale, 1.0), f"max |diff| {diff:.3g} at output scale {scale:.3g}"


@pytest.mark.parametrize("variant", ["concat", "spatin"])
def test_reference_weights_reproduce_the_score_network(variant):
    model, notes = reference_model(variant)
    ref = outputs(variant)
    assert sorted(item["key"] for item in notes["dropped"]) == sorted(stbench_mcvd.CHECKPOINT_IGNORE)
    with torch.no_grad():
        eps = model.unet(ref["x_noisy"], ref["labels"], ref["cond"])
    assert_close(eps, ref["eps"])
    fresh = build_mcvd(FIXTURE_TASK, dict(FIXTURE_HPARAMS, spade=variant == "spatin")).eval()
    with torch.no_grad():
        other = fresh.unet(ref["x_noisy"], ref["labels"], ref["cond"])
    assert (other - ref["eps"]).abs().max() > 0.1


def test_the_ema_shadow_is_what_gets_loaded():
    # the container's state dict and its EMA shadow differ; the authors sample with the shadow
    states = torch.load(FIXTURES / "mcvd_concat_checkpoint.pt", weights_only=True)
    assert isinstance(states, list) and len(states) == 5 and isinstance(states[1], dict)
    model, _ = reference_model("concat")
    key = "unet.all_modules.2.weight"
    assert torch.equal(model.state_dict()[key], states[4][key])
    assert not torch.equal(states[0]["module." + key], states[4][key])


@pytest.mark.parametrize("variant", ["concat", "spatin"])
def test_denoising_loss_matches_the_reference(variant):
    model, _ = reference_model(variant)
    ref = outputs(variant)
    torch.manual_seed(int(ref["loss_seed"]))
    loss = denoising_loss(model.unet, model.alphas, ref["target"], ref["cond"])
    assert abs(loss.item() - ref["loss"].item()) <= 1e-5 * ref["loss"].item()


@pytest.mark.parametrize("variant", ["concat", "spatin"])
@pytest.mark.parametrize("sampler, steps, key", [("ddpm", 4, "ddpm4"), ("ddim", 4, "ddim4"), ("ddpm", 3, "ddpm3")])
def test_samplers_match_the_reference_given_the_same_noise(variant, sampler, steps, key):
    model, _ = reference_model(variant)
    ref = outputs(variant)
    generator = torch.Generator().manual_seed(int(ref["sample_seed"]))
    noise = lambda: torch.randn(ref["init"].shape, generator=generator)  # noqa: E731
    sample = sample_frames(model.unet, ref["init"].clone(), ref["cond"], model.alphas, model.alphas_prev, model.betas,
                           steps, sampler, noise)
    assert_close(sample, ref[key], CHAIN)


@pytest.mark.parametrize("variant", ["concat", "spatin"])
def test_blockwise_rollout_matches_the_reference(variant):
    model, _ = reference_model(variant)
    ref = outputs(variant)
    model.sampling_steps = 4
    generator = torch.Generator().manual_seed(int(ref["rollout_seed"]))
    shape = (ref["clip"].shape[0], model.num_frames, *ref["clip"].shape[-2:])
    pred = model.predict(ref["clip"], 5, lambda: torch.randn(shape, generator=generator))
    assert pred.shape == ref["rollout"].shape == (2, 5, 1, 16, 16)
    assert_close(pred, ref["rollout"], CHAIN)


def test_schedule_is_the_authors():
    model, _ = reference_model("concat")
    ref = outputs("concat")
    for name in ("betas", "alphas", "alphas_prev"):
        assert torch.equal(getattr(model, name), ref[name]), name
    levels = sampling_schedule(model.alphas, model.alphas_prev, model.betas, 3)[0]
    assert levels == [0, 333, 666, 999]  # T // steps apart, as the authors subsample
    assert sampling_schedule(model.alphas, model.alphas_prev, model.betas, 1000)[0] == list(range(1000))


def test_fir_resampling_matches_upfirdn2d_on_a_ramp():
    # upfirdn2d with [1, 3, 3, 1]: a constant image stays constant away from the border
    x = torch.ones(1, 2, 8, 8)
    assert torch.allclose(fir_upsample(x)[..., 2:-2, 2:-2], torch.ones(1, 2, 12, 12))
    assert torch.allclose(fir_downsample(x)[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2))
    assert fir_upsample(x).shape == (1, 2, 16, 16) and fir_downsample(x).shape == (1, 2, 4, 4)


def test_initialisation_follows_ddpm():
    torch.manual_seed(0)
    model = build_mcvd(FIXTURE_TASK, dict(FIXTURE_HPARAMS, ngf=32))
    stem = model.unet.all_modules[2]  # conv3x3 from 5 frames to ngf: uniform, variance 1 / fan_avg
    fan_avg = (5 * 9 + 32 * 9) / 2
    bound = (3 / fan_avg) ** 0.5
    assert stem.weight.abs().max() <= bound and stem.weight.abs().max() > 0.9 * bound
    assert abs(stem.weight.var().item() * fan_avg - 1) < 0.15 and torch.all(stem.bias == 0)
    last = model.unet.all_modules[-1]  # init_scale 0: 1e-10 variance, as the reference
    assert last.weight.abs().max() < 1e-4
    assert variance_scaling_uniform((64, 64, 3, 3)).var().item() == pytest.approx(1 / (64 * 9), rel=0.05)


# The authors' models at their configs (counted from their code, tests/fixtures/README.md).
AUTHORS_PARAMS = {("mmnist", False): 27_941_765, ("mmnist", True): 53_953_989,
                  ("kth", False): 62_831_141, ("kth", True): 102_005_669}


@pytest.mark.parametrize("dataset, spade", sorted(AUTHORS_PARAMS))
def test_paper_configs_have_the_authors_parameter_count(dataset, spade):
    task = Task(dataset, 10, 10, (1, 64, 64))
    with torch.device("meta"):
        model = build_mcvd(task, dict(SPEC.hparams_for("paper", dataset), spade=spade))
    assert count_params(model) == AUTHORS_PARAMS[dataset, spade]


def test_macs_count_every_score_evaluation():
    task = Task("mmnist", 4, 5, (1, 16, 16))
    model = build_mcvd(task, dict(FIXTURE_HPARAMS, num_frames=2, num_frames_cond=2, sampling_steps=4))
    stacked = count_macs(model, task)  # meta device: all evaluations in one batch
    assert stacked == _count(model.eval(), task, "cpu")  # the real loop: 3 blocks x (4 levels + denoising)
    one = build_mcvd(task, dict(FIXTURE_HPARAMS, num_frames=2, num_frames_cond=2, sampling_steps=1, denoise=False))
    assert stacked == 5 * count_macs(one, task)


def test_sampling_is_repeatable_per_clip_and_seeded():
    task = Task("mmnist", 4, 3, (1, 16, 16))
    torch.manual_seed(0)
    model = build_mcvd(task, dict(FIXTURE_HPARAMS, num_frames=2, num_frames_cond=2)).eval()
    x = torch.rand(3, 4, 1, 16, 16)
    together = model(x, 3)
    assert torch.equal(model(x[1:2], 3), together[1:2])  # a clip's sample does not depend on its batch
    assert not torch.equal(together[0], together[1])
    model.sample_seed = 1
    assert not torch.equal(model(x, 3), together)
    assert together.min() >= 0 and together.max() <= 1
    assert "DDPM sampler" in model.record_notes()["predictions"]


def test_loss_conditions_on_the_last_observed_frames():
    task = Task("mmnist", 4, 3, (1, 16, 16))
    model = build_mcvd(task, dict(FIXTURE_HPARAMS, num_frames=2, num_frames_cond=2))
    seen = {}

    def spy(noisy, labels, cond):
        seen["cond"] = cond
        return torch.zeros_like(noisy)

    model.unet.forward = spy
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    model.loss(x, y, 0)
    assert torch.equal(seen["cond"], (2 * x[:, 2:] - 1).reshape(2, 2, 16, 16))
    model.num_frames = 4  # t_out < k: the window slides back into the observed frames
    model.loss(x, y, 0)
    assert torch.equal(seen["cond"], (2 * x[:, 1:3] - 1).reshape(2, 2, 16, 16))
    model.prob_mask_cond = 0.999999  # MCVD's past masking drops a clip's whole condition
    model.loss(x, y, 0)
    assert torch.all(seen["cond"] == 0)


@pytest.mark.parametrize("change, message", [
    (dict(num_frames_cond=7), "num_frames_cond"),
    (dict(num_frames=9), "num_frames"),
    (dict(sampler="euler"), "sampler"),
    (dict(ch_mult=[1, 2, 2, 2, 2, 2]), "halve"),
    (dict(n_head_channels=12), "n_head_channels"),
    (dict(ch_mult="1,2"), "ch_mult"),
])
def test_bad_hparams_are_one_line_user_errors(change, message):
    with pytest.raises(UserError, match=message):
        build_mcvd(FIXTURE_TASK, dict(FIXTURE_HPARAMS, **change))


def test_the_authors_container_is_recognised_by_the_core_reader():
    checkpoint = read_checkpoint(FIXTURES / "mcvd_concat_checkpoint.pt")
    assert checkpoint.format == "ncsnv2-list" and checkpoint.prefixes_stripped == ["module."]
    assert not any(key.startswith("module.") for key in checkpoint.state)


def test_model_class_is_exported_lazily():
    assert stbench_mcvd.MCVDModel is MCVDModel
