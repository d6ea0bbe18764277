"""MMVP: OpenSTL's weights reproduce OpenSTL's outputs and training loss, sizes, motion matrices, rollout, errors."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stbench import Task, UserError, plugins
from stbench.checkpoints import load_weights, read_checkpoint
from stbench.config import TRAIN_KEYS, resolve
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_mmvp import ARCH_KEYS, MMVPModel
from stbench_mmvp.model import chain, compose, normalise, similarity

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
OPENSTL_SIZES = json.loads((FIXTURES / "openstl_sizes.json").read_text())
OPENSTL_CONFIGS = json.loads((FIXTURES / "openstl_mmvp_configs.json").read_text())
TOLERANCE = 1e-5  # at the output's own scale; in practice the outputs are identical


def spec():
    return plugins.get_model("mmvp")


def fixture_model(name, seed=0):
    entry = MANIFEST["models"][name]
    t, c, h, w = entry["in_shape"]
    s = entry["settings"]
    torch.manual_seed(seed)
    model = spec().build(Task("openstl", t, entry["aft_seq_length"], (c, h, w)), {
        "hid_s": s["hid_S"], "hid_t": s["hid_T"], "rrdb_encoder_num": s["rrdb_encoder_num"],
        "rrdb_decoder_num": s["rrdb_decoder_num"], "rrdb_enhance_num": s["rrdb_enhance_num"],
        "downsample": [int(f) for f in s["downsample_setting"].split(",")]})
    return model


def clips(name):
    outputs = torch.load(FIXTURES / MANIFEST["models"][name]["outputs"], weights_only=True)
    return outputs["x_uint8"].float() / 255, outputs["y_uint8"].float() / 255, outputs


def openstl_layout(pred):
    """OpenSTL's last reshape: ``permute(0, 2, 3, 1).reshape(B, -1, C, H, W)`` of the ``[B*T, C, H, W]`` frames."""
    b, t, c, h, w = pred.shape
    return pred.reshape(b * t, c, h, w).permute(0, 2, 3, 1).reshape(b, t, c, h, w)


def build(profile="smoke", task=Task("toy", 4, 3, (1, 32, 32)), seed=0, **overrides):
    _, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), profile, overrides)
    torch.manual_seed(seed)
    return spec().build(task, hparams)


# ------------------------------------------------------------------------------------------ fidelity

@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_openstl_weights_reproduce_openstl_outputs(name):
    entry = MANIFEST["models"][name]
    model = fixture_model(name)
    notes = load_weights(model, read_checkpoint(FIXTURES / entry["file"]), spec())
    assert notes["keys_loaded"] == len(model.state_dict())
    # the never-called scale fusers and fuse_conv are dropped (with their BatchNorm buffers) and named
    dropped = [d for d in notes["dropped"] if not d["key"].endswith(("running_mean", "running_var",
                                                                     "num_batches_tracked"))]
    assert sum(d["parameters"] for d in dropped) == entry["unused"]
    assert {d["key"].split(".")[1] for d in dropped} == {"scale_fuser_1", "scale_fuser_2", "predictor"}
    assert count_params(model) + entry["unused"] == entry["parameters"]
    x, _, outputs = clips(name)
    expected = outputs["pred"]
    model.eval()
    with torch.no_grad():
        pred = model(x, entry["aft_seq_length"])
    if x.shape[2] > 1:  # OpenSTL's frames come out with pixels and channels interleaved (README)
        assert not torch.allclose(pred, expected)
        pred = openstl_layout(pred)
    scale = max(1.0, float(expected.abs().max()))
    assert float((pred - expected).abs().max()) <= TOLERANCE * scale
    fresh = fixture_model(name, seed=123).eval()
    with torch.no_grad():
        assert float((fresh(x, entry["aft_seq_length"]) - expected).abs().max()) > 1e-2


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_training_loss_is_openstls(name):
    """methods/mmvp.py: the model is given cat(x, y) in train mode (the targets enter the motion filters'
    batch statistics), MSE against y."""
    entry = MANIFEST["models"][name]
    model = fixture_model(name)
    load_weights(model, read_checkpoint(FIXTURES / entry["file"]), spec())
    x, y, outputs = clips(name)
    model.train()
    with torch.no_grad():
        loss = model.loss(x, y, 0)
        frames = model.predict(torch.cat([x, y], dim=1))
    if x.shape[2] > 1:
        assert loss.item() != pytest.approx(float(outputs["train_loss"]), rel=1e-4)
        loss = F.mse_loss(openstl_layout(frames), y)
    assert loss.item() == pytest.approx(float(outputs["train_loss"]), rel=1e-5)
    # the targets do change the training output (batch statistics), never the eval output
    with torch.no_grad():
        other = model.predict(torch.cat([x, torch.rand_like(y)], dim=1))
        assert not torch.allclose(other, frames)
        model.eval()
        assert torch.equal(model.predict(torch.cat([x, y], dim=1)), model.predict(x))


# ------------------------------------------------------------------------------------------- sizes

PAPER_TASKS = [Task("mmnist", 10, 10, (1, 64, 64)), Task("kth", 10, 20, (1, 128, 128)), Task("kth", 10, 40, (1, 128, 128))]


@pytest.mark.parametrize("task", PAPER_TASKS, ids=[t.name for t in PAPER_TASKS])
def test_paper_sizes_against_openstls_code(task):
    """OpenSTL publishes no MMVP figures; its own model at the paper configs, counted with fvcore
    (fixtures/openstl_sizes.json): parameters (less the never-called modules) and the convolution and
    bmm MACs are equal; fvcore's total also counts BatchNorm and resizing (under 0.2%)."""
    openstl = OPENSTL_SIZES[task.name]
    hparams = {k: v for k, v in spec().settings_for("paper", task.dataset).items() if k not in TRAIN_KEYS}
    with torch.device("meta"):
        model = spec().build(task, hparams)
    assert count_params(model) + openstl["unused"] == openstl["parameters"]
    fv = openstl["fvcore_eval"]
    macs = count_macs(model, task)
    assert macs == fv["by_operator"]["conv"] + fv["by_operator"]["bmm"]
    assert macs / fv["total"] == pytest.approx(1.0, abs=0.002)


@pytest.mark.parametrize("dataset", ["mmnist", "kth"])
def test_paper_profile_follows_openstls_configs(dataset):
    openstl = OPENSTL_CONFIGS[dataset]
    ours = spec().settings_for("paper", dataset)
    assert (ours["hid_s"], ours["hid_t"]) == (openstl["hid_S"], openstl["hid_T"])
    for key in ("rrdb_encoder_num", "rrdb_decoder_num", "rrdb_enhance_num", "lr", "batch_size"):
        assert ours[key] == openstl[key], key
    assert ours["downsample"] == [int(f) for f in openstl["downsample_setting"].split(",")]
    assert ours["schedule"] == openstl["sched"] and openstl["use_direct_predictor"] is True
    train, hparams, _ = resolve(spec(), plugins.get_dataset(dataset), "paper", {})
    assert set(hparams) == set(ARCH_KEYS) and train["epochs"] == {"mmnist": 200, "kth": 100}[dataset]


# ---------------------------------------------------------------------------------------- behaviour

def test_similarity_is_cosine_and_normalise_is_one_softmax_per_matrix():
    f = torch.randn(2, 3, 5, 4, 4)
    s = similarity(f)
    assert s.shape == (2, 2, 16, 16)
    a, b = f[1, 0, :, 1, 2], f[1, 1, :, 3, 0]
    assert float(s[1, 0, 1 * 4 + 2, 3 * 4 + 0]) == pytest.approx(float(F.cosine_similarity(a, b, dim=0)), abs=1e-5)
    n = normalise(s)
    assert torch.allclose(n.sum(dim=(-2, -1)), torch.ones(2, 2))


def test_chain_and_compose_move_features_along_the_motion():
    """Permutation matrices as motion: the chain composes them, and the composed frame is the observed
    features moved along the chained motion (weights normalised)."""
    perm = torch.eye(4)[[1, 2, 3, 0]]
    mats = perm.expand(1, 3, 4, 4).clone()
    assert torch.equal(chain(mats)[0, 0], perm @ perm @ perm)
    features = torch.randn(2, 3, 2, 2)  # two observed frames, 3 channels, a 2x2 grid
    motion = torch.zeros(1, 2, 4, 4)
    motion[0, 0] = perm  # frame 0 -> frame 1
    motion[0, 1] = perm  # frame 1 -> the future frame
    out = compose(features, motion, t_in=2, t_out=1)
    flat = features.reshape(2, 3, 4)
    # the future frame takes, at each target, the mean of the sources mapped onto it from both frames
    expected = (flat[0] @ (perm @ perm) + flat[1] @ perm) / 2
    assert torch.allclose(out.reshape(3, 4), expected, atol=1e-5)


def test_rollout_feeds_the_last_t_in_frames_back():
    model = build(task=Task("toy", 4, 3, (1, 32, 32))).eval()
    x = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        first = model(x, 3)
        second = model.predict(torch.cat([x, first], dim=1)[:, -4:])
        third = model.predict(torch.cat([x, first, second], dim=1)[:, -4:])
        assert torch.equal(model(x, 8), torch.cat([first, second, third[:, :2]], dim=1))
        assert torch.equal(model(x, 2), first[:, :2])


def test_family_and_profiles():
    assert spec().family == "recurrent-free"
    for profile in ("paper", "quick", "smoke"):
        _, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), profile, {})
        assert set(hparams) == set(ARCH_KEYS)
    assert isinstance(build(), MMVPModel)


@pytest.mark.parametrize("task, change, message", [
    (Task("toy", 4, 4, (1, 24, 24)), {"downsample": [2, 2, 2]}, "divisible by 16"),
    (Task("toy", 1, 4, (1, 32, 32)), {}, "at least 2 input frames"),
    (Task("toy", 4, 4, (1, 32, 32)), {"downsample": [3, 2]}, "each 2 or 4"),
    (Task("toy", 4, 4, (1, 32, 32)), {"downsample": [2]}, "at least two factors"),
    (Task("toy", 4, 4, (1, 32, 32)), {"hid_s": 1}, "hid_s"),
    (Task("toy", 4, 4, (1, 32, 32)), {"hid_t": 0}, "hid_t"),
    (Task("toy", 4, 4, (1, 32, 32)), {"rrdb_enhance_num": -1}, "rrdb_enhance_num"),
])
def test_bad_settings_are_one_line_user_errors(task, change, message):
    with pytest.raises(UserError, match=message) as error:
        build(task=task, **change)
    assert "\n" not in str(error.value)
