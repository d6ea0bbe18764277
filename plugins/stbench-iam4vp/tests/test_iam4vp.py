"""IAM4VP: the authors' weights and rollout, their initialisation, the published size, rollout and loss behaviour."""
import fnmatch
import json
from pathlib import Path

import pytest
import torch

import stbench_iam4vp
from stbench import Task, UserError
from stbench.checkpoints import load_weights, read_checkpoint, rename_key
from stbench.config import TRAIN_KEYS, resolve
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_iam4vp import IAM4VPModel
from stbench_iam4vp.layers import TimeBlock

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_SETTINGS = {"hid_s": 4, "n_s": 4, "n_t": 8}  # the authors' model at hid_S 4 (fixtures/README.md)
TOLERANCE = 1e-5
MMNIST = Task("mmnist", 10, 10, (1, 64, 64))


def registered():
    specs = {}
    stbench_iam4vp.stbench_register_models(register=lambda spec: specs.setdefault(spec.name, spec))
    return specs["iam4vp"]


SPEC = registered()


def build(profile="paper", task=MMNIST, **overrides):
    """The model as `stbench eval --profile <profile> --set ...` builds it."""
    hparams = {k: v for k, v in SPEC.settings_for(profile, task.dataset).items() if k not in TRAIN_KEYS}
    return SPEC.build(task, {**hparams, **overrides})


def smoke(t_in=4, t_out=4, shape=(1, 16, 16), seed=0):
    torch.manual_seed(seed)
    return build("smoke", Task("toy", t_in, t_out, shape))


@pytest.fixture(scope="module")
def clips():
    return torch.load(FIXTURES / "rollout.pt", weights_only=True)


def authors_weights(model):
    checkpoint = read_checkpoint(FIXTURES / "checkpoint.pth")
    return checkpoint, load_weights(model, checkpoint, SPEC)


# ---------------------------------------------------------------------------------------------- fidelity

def test_authors_checkpoint_reproduces_their_rollout(clips):
    model = build(**FIXTURE_SETTINGS)
    checkpoint, notes = authors_weights(model)
    assert notes["format"] == "openstl-pth" and notes["prefixes_stripped"] == []  # their bare state dict
    assert notes["keys_loaded"] == len(model.state_dict())
    # the block the reference builds and never runs (its index is N_T) is dropped and named
    assert {d["key"].split(".")[2] for d in notes["dropped"]} == {"8"}
    assert notes["dropped_parameters"] == sum(p.numel() for p in TimeBlock(40, 64).parameters())
    model.eval()
    with torch.no_grad():
        pred = model(clips["x"], 10)
    expected = clips["prediction"]
    scale = max(1.0, float(expected.abs().max()))
    assert float((pred - expected).abs().max()) <= TOLERANCE * scale
    # every frame depends on the earlier predictions fed back: a changed slot encoder moves frames 1..9 only
    with torch.no_grad():
        for p in model.frame_encoder.parameters():
            p.mul_(0.9)
        moved = (model(clips["x"], 10) - pred).abs().amax(dim=(0, 2, 3, 4))
    assert moved[0] == 0 and bool((moved[1:] > 1e-3).all())
    # another draw of the same model is far from the authors' output
    torch.manual_seed(123)
    fresh = build(**FIXTURE_SETTINGS).eval()
    with torch.no_grad():
        assert float((fresh(clips["x"], 10) - expected).abs().max()) > 1e-2


def test_authors_rollout_in_float64_is_reproduced_exactly(clips):
    # float32 rounding grows through the fed-back frames; in float64 the two implementations agree to ~1e-14
    model = build(**FIXTURE_SETTINGS)
    authors_weights(model)
    model.double().eval()
    with torch.no_grad():
        pred = model(clips["x"].double(), 10)
    expected = torch.load(FIXTURES / "rollout_float64.pt", weights_only=True)["prediction"]
    assert expected.dtype == torch.float64
    assert float((pred - expected).abs().max()) < 1e-10


def test_a_checkpoint_with_another_depth_is_refused():
    with pytest.raises(UserError, match="does not fit iam4vp"):
        authors_weights(build(**{**FIXTURE_SETTINGS, "n_t": 7}))


def test_initialisation_follows_the_reference():
    """Mean / std of every tensor of a fresh model against the authors' fresh model (fixtures/init_statistics.json)."""
    recorded = json.loads((FIXTURES / "init_statistics.json").read_text())
    settings = recorded["settings"]
    torch.manual_seed(0)
    model = build(hid_s=settings["hid_S"], n_s=settings["N_S"], n_t=settings["N_T"])
    own = {k: v for k, v in model.state_dict().items()}
    unused = f"hid.st_block.{settings['N_T']}.*"
    compared = set()
    for key, ref in recorded["tensors"].items():
        if fnmatch.fnmatchcase(key, unused):
            continue
        ours = own[rename_key(key, SPEC.checkpoint_rename, own)].double()
        assert ours.numel() == ref["numel"], key
        compared.add(rename_key(key, SPEC.checkpoint_rename, own))
        std = float(ours.std()) if ours.numel() > 1 else 0.0
        if ref["numel"] == 1:  # a single draw (the readout bias of one channel) says nothing
            continue
        if ref["std"] == 0:  # constants: zeros, ones, the layer scale 1e-6
            assert float(ours.mean()) == pytest.approx(ref["mean"], abs=1e-12) and std == 0, key
            continue
        if ref["numel"] >= 64:
            assert std == pytest.approx(ref["std"], rel=0.2), key
        assert abs(float(ours.mean()) - ref["mean"]) <= 6 * ref["std"] / ref["numel"] ** 0.5 + 1e-9, key
    assert compared == set(own)
    # the reference's ConvSC layers start from N(0, 0.02^2) with zero bias, unlike PyTorch's default
    conv = model.decoder.layers[-1].conv.requires_grad_(False)
    assert float(conv.weight.std()) == pytest.approx(0.02, rel=0.05) and float(conv.bias.abs().max()) == 0


# ---------------------------------------------------------------------------------------- published size

# USTEP (TPAMI 2025) Table II: IAM4VP Params (M) / FLOPs (G) on Moving MNIST, Human3.6M and WeatherBench.
PUBLISHED = [
    (MMNIST, 35.4, 14.2),
    (Task("human", 4, 4, (3, 256, 256)), 102.0, 978.0),
    (Task("weather", 12, 12, (1, 32, 64)), 12.9, 2.4),
]


def first_call_macs(model, task):
    """MACs of one model call (the first future frame: no earlier prediction to encode), at batch 1."""
    model.eval()
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), torch.device("meta"), counter:
        latent, skip = model.encode(torch.zeros(1, task.t_in, *task.shape))
        model.predict(latent, skip, [], 0)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("task, params_m, gmacs", PUBLISHED, ids=[t.dataset for t, *_ in PUBLISHED])
def test_paper_configs_match_the_published_params_and_flops(task, params_m, gmacs):
    """The published params count a predictor block the reference builds and never runs (stbench has
    no such block); the published FLOPs are one model call, the first frame's."""
    with torch.device("meta"):
        model = build(task=task)
        unused = count_params(TimeBlock(task.t_in * model.hid_s, 64))
    assert (count_params(model) + unused) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert first_call_macs(model, task) / 1e9 == pytest.approx(gmacs, rel=0.02)


def test_stbench_counts_the_whole_rollout():
    with torch.device("meta"):
        model = build()
    assert count_params(model) / 1e6 == pytest.approx(31.57, abs=0.01)
    first = first_call_macs(model, MMNIST)
    rollout = count_macs(model, MMNIST)  # what `stbench profile` and the run records show
    assert rollout / 1e9 == pytest.approx(134.44, rel=1e-3)
    # ten calls; the observed frames are encoded once and each prediction once
    assert 9 * first < rollout < 10 * first


# -------------------------------------------------------------------------------------------- behaviour

def test_one_call_per_frame_with_earlier_predictions_in_the_slots():
    model = smoke().eval()
    with torch.no_grad():
        for block in model.predictor.blocks:  # layer scales of 1e-6 would hide the time conditioning
            block.scale.fill_(1.0)
    x = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        latent, skip = model.encode(x)
        frames, slots = [], []
        for k in range(4):
            frames.append(model.predict(latent, skip, slots, k))
            slots.append(model.frame_encoder(frames[-1])[0])
        assert torch.allclose(model(x, 4), torch.stack(frames, dim=1), atol=1e-6)
        # the time step matters: frame 1 predicted as if it were frame 0 differs
        assert not torch.allclose(model.predict(latent, skip, slots[:1], 0), frames[1], atol=1e-4)


def test_extended_and_reduced_horizons():
    model = smoke().eval()
    x = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        first = model(x, 4)
        second = model(first, 4)
        third = model(second, 4)
        assert torch.allclose(model(x, 11), torch.cat([first, second, third[:, :3]], dim=1), atol=1e-6)
        assert torch.allclose(model(x, 2), first[:, :2], atol=1e-6)
        assert model(x, 1).shape == (2, 1, 1, 16, 16)


def test_loss_is_per_frame_mse_with_detached_feedback():
    model = smoke()
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 4, 1, 16, 16)
    loss = model.loss(x, y, 0)
    with torch.no_grad():
        assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(model(x, 4), y).item(), rel=1e-6)
    # the fed-back predictions are constants (as in the authors' per-frame training steps), so the
    # gradient differs from back-propagating through the whole rollout
    detached = torch.autograd.grad(loss, model.merge.weight)[0]
    full = torch.autograd.grad(torch.nn.functional.mse_loss(model(x, 4), y), model.merge.weight)[0]
    assert not torch.allclose(detached, full)


def test_one_observed_frame_needs_no_slot_encoder():
    model = smoke(t_in=1, t_out=3)
    assert model.frame_encoder is None
    assert model(torch.rand(2, 1, 1, 16, 16), 3).shape == (2, 3, 1, 16, 16)
    model.loss(torch.rand(2, 1, 1, 16, 16), torch.rand(2, 3, 1, 16, 16), 0).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_user_errors_say_what_to_change():
    with pytest.raises(UserError, match="n_s"):
        build("smoke", Task("toy", 2, 2, (1, 18, 18)), n_s=4)
    with pytest.raises(UserError, match="time_dim"):
        build("smoke", Task("toy", 2, 2, (1, 16, 16)), time_dim=7)
    with pytest.raises(UserError, match="hid_s"):
        build("smoke", Task("toy", 2, 2, (1, 16, 16)), hid_s=0)
    with pytest.raises(ValueError, match="hid_t"):
        build("smoke", Task("toy", 2, 2, (1, 16, 16)), hid_t=512)


def test_declared_profiles_resolve():
    from stbench import plugins
    dataset = plugins.get_dataset("mmnist")
    for profile in ("paper", "quick", "smoke"):
        train, hparams, _ = resolve(SPEC, dataset, profile, {})
        assert set(hparams) == set(stbench_iam4vp.ARCH_KEYS)
    train, hparams, _ = resolve(SPEC, dataset, "paper", {})
    assert (hparams["hid_s"], hparams["n_s"], hparams["n_t"]) == (64, 4, 8)
    assert (train["lr"], train["batch_size"], train["epochs"], train["schedule"]) == (1e-3, 16, 600, "cosine")
    assert isinstance(IAM4VPModel(MMNIST, hid_s=4, n_s=2, n_t=1), IAM4VPModel)


def test_a_one_frame_task_declares_the_re_encoder_unused_for_ddp():
    from stbench_iam4vp.model import IAM4VPModel

    one = IAM4VPModel(Task("toy", 3, 1, (1, 16, 16)), hid_s=2, n_s=2, n_t=1, time_dim=8, head_dim=4)
    one.loss(torch.rand(2, 3, 1, 16, 16), torch.rand(2, 1, 1, 16, 16), 0).backward()
    assert one.unused_parameters and all(p.grad is None for p in one.frame_encoder.parameters())
    assert not IAM4VPModel(Task("toy", 3, 2, (1, 16, 16)), hid_s=2, n_s=2, n_t=1, time_dim=8, head_dim=4).unused_parameters
