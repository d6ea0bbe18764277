"""DMVFN against OpenSTL v0.3.0's own weights, outputs and training loss (with and without the VGG term), its
routing and per-triple training, the VGG weight search, its configs and its published sizes."""
import json
import math
from pathlib import Path

import pytest
import torch

from stbench import Task, UserError, plugins
from stbench.checkpoints import load_weights, read_checkpoint
from stbench.config import TRAIN_KEYS, resolve
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_dmvfn import DMVFN, VGG19Features
from stbench_dmvfn.perceptual import LAYOUT, VGG19_FILE, WEIGHTS_ENV

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
OPENSTL_CONFIGS = json.loads((FIXTURES / "openstl_dmvfn_configs.json").read_text())
CASES = ("dmvfn", "dmvfn_rgb32")
TOLERANCE = 1e-5  # at the output's scale (frames in [0, 1]); on the machine that made them the outputs are identical


@pytest.fixture(autouse=True)
def no_vgg_weights(tmp_path, monkeypatch):
    """Every test starts on a machine without VGG19 weights (an empty torch hub, no variable)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


def spec():
    return plugins.get_model("dmvfn")


def build_case(name, **overrides):
    """The fixture's model as `stbench eval --profile paper --set ...` builds it, on a task of its frame shape."""
    case = MANIFEST[name]
    settings = {"num_features": case["num_features"], "scale": case["scale"],
                "routing_out_channels": case["routing_out_channels"], **overrides}
    _, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), "paper", settings)
    return spec().build(Task("fixture", 2, case["steps"], tuple(case["shape"])), hparams)


def io(name):
    data = torch.load(FIXTURES / f"{name}_io.pt", weights_only=True)
    return data, data["clips_uint8"].float() / 255


def stand_in_vgg(seed=19):
    """VGG19's feature weights up to relu5_1 under torchvision's key names and shapes, seeded (the fixtures'
    OpenSTL losses were computed with this same draw, torch's CPU generator being stable)."""
    generator = torch.Generator().manual_seed(seed)
    state, channels, index = {}, 3, 0
    for width in LAYOUT:
        if width == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3, generator=generator) * math.sqrt(2 / (9 * channels))
        state[f"features.{index}.bias"] = torch.randn(width, generator=generator) * 0.01
        channels, index = width, index + 2
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    state = stand_in_vgg()
    sums = MANIFEST["vgg_stand_in"]["sums"]
    assert set(sums) == set(state) and all(float(state[k].double().sum()) == pytest.approx(s, abs=1e-9) for k, s in sums.items())
    path = tmp_path_factory.mktemp("vgg") / VGG19_FILE
    torch.save(state, path)
    return path


# ------------------------------------------------------------------------------------------ fidelity

@pytest.mark.parametrize("name", CASES)
def test_openstl_weights_reproduce_openstl_predictions(name):
    model = build_case(name)
    notes = load_weights(model, read_checkpoint(FIXTURES / f"{name}.pth"), spec())
    assert notes["keys_loaded"] == len(model.state_dict())
    data, frames = io(name)
    steps = MANIFEST[name]["steps"]
    model.eval()
    for k, seed in enumerate(MANIFEST[name]["inference_seeds"]):
        torch.manual_seed(seed)  # the routing bits are Bernoulli draws, as in OpenSTL
        with torch.no_grad():
            pred = model(frames[k:k + 1, :2], steps)
        expected = data[f"prediction_{k}"]
        assert float((pred - expected).abs().max()) <= TOLERANCE * float(expected.abs().max())
    torch.manual_seed(5)
    fresh = build_case(name).eval()
    torch.manual_seed(MANIFEST[name]["inference_seeds"][0])
    with torch.no_grad():
        assert float((fresh(frames[:1, :2], steps) - data["prediction_0"]).abs().max()) > 1e-2


@pytest.mark.parametrize("name", CASES)
def test_openstl_training_loss_without_vgg_weights(name):
    model = build_case(name)
    load_weights(model, read_checkpoint(FIXTURES / f"{name}.pth"), spec())
    data, frames = io(name)
    torch.manual_seed(MANIFEST[name]["loss_seed"])
    with torch.no_grad():
        loss = model.loss(frames[:, :2], frames[:, 2:3], 0)
    assert loss.item() == pytest.approx(data["loss_without_vgg"], rel=1e-5)
    assert "left out: no VGG19 ImageNet weights were found" in model.record_notes()["perceptual_loss"]


@pytest.mark.parametrize("name", CASES)
def test_openstl_training_loss_with_vgg_weights_from_the_torch_hub_cache(name, vgg_file, tmp_path, monkeypatch):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / VGG19_FILE).symlink_to(vgg_file)
    model = build_case(name)
    load_weights(model, read_checkpoint(FIXTURES / f"{name}.pth"), spec())
    data, frames = io(name)
    torch.manual_seed(MANIFEST[name]["loss_seed"])
    with torch.no_grad():
        loss = model.loss(frames[:, :2], frames[:, 2:3], 0)
    assert loss.item() == pytest.approx(data["loss"], rel=1e-5)
    assert loss.item() > data["loss_without_vgg"] * 1.01
    assert str(hub / VGG19_FILE) in model.record_notes()["perceptual_loss"]
    # the perceptual network is no part of the model: not counted, not saved, not trained
    assert set(model.state_dict()) == set(build_case(name).state_dict())
    assert count_params(model) == count_params(build_case(name))


# ----------------------------------------------------------------------------------- the VGG weights

def test_vgg_weights_named_by_setting_or_variable(vgg_file, tmp_path, monkeypatch):
    assert build_case("dmvfn", vgg_weights=str(vgg_file)).vgg_path == vgg_file
    monkeypatch.setenv(WEIGHTS_ENV, str(vgg_file))
    model = build_case("dmvfn")
    assert model.vgg_path == vgg_file and f"${WEIGHTS_ENV}" in model.record_notes()["perceptual_loss"]
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(UserError, match="nowhere.pth, which is not a file"):
        build_case("dmvfn")


def test_a_file_that_is_not_vgg19_is_refused_in_one_line(tmp_path):
    wrong = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, wrong)
    with pytest.raises(UserError, match=r"not torchvision's VGG19 \(features.0.weight: shape \(8, 3, 3, 3\)"):
        VGG19Features.load(wrong)


def test_without_the_vgg_term_no_weights_are_looked_for():
    model = build_case("dmvfn", coef=0.0)
    assert model.vgg_path is None and model.record_notes()["perceptual_loss"].startswith("off (coef 0)")


# ----------------------------------------------------------------------------------------- behaviour

def test_each_clip_runs_only_the_blocks_its_routing_selects():
    model = build_case("dmvfn")
    load_weights(model, read_checkpoint(FIXTURES / "dmvfn.pth"), spec())
    _, frames = io("dmvfn")
    img0, img1 = frames[:, 0], frames[:, 1]
    bits = torch.tensor([[1.0, 0, 1, 1, 0, 0, 1, 1, 1], [0.0, 1, 0, 0, 1, 1, 0, 0, 1]])
    with torch.no_grad():
        both = model.predict_next(img0, img1, bits)
        alone = [model.predict_next(img0[k:k + 1], img1[k:k + 1], bits[k:k + 1]) for k in range(2)]
        assert torch.allclose(both, torch.cat(alone), atol=1e-6)
        other = model.predict_next(img0[:1], img1[:1], bits[1:])
        assert float((other - alone[0]).abs().max()) > 1e-3  # the bits matter
        none = model.predict_next(img0, img1, torch.zeros_like(bits))
    assert torch.equal(none, img0)  # a clip whose routing selects no block repeats the older frame, as OpenSTL


def test_prediction_feeds_back_and_samples_the_routing():
    model = build_case("dmvfn").eval()
    x = torch.rand(1, 5, 1, 64, 64)
    assert model.stochastic
    torch.manual_seed(3)
    with torch.no_grad():
        three = model(x, 3)
        torch.manual_seed(3)
        first = model.predict_next(x[:, -2], x[:, -1])
        second = model.predict_next(x[:, -1], first)
    assert torch.equal(three[:, 0], first) and torch.equal(three[:, 1], second)
    torch.manual_seed(3)
    with torch.no_grad():
        assert torch.equal(model(x, 3), three)  # the same draws, the same prediction


def test_training_steps_once_per_frame_triple():
    model = build_case("dmvfn")
    x, y = torch.rand(2, 10, 1, 64, 64), torch.rand(2, 10, 1, 64, 64)
    pieces = model.split_batch(x, y)
    assert len(pieces) == 18
    frames = torch.cat([x, y], 1)
    for i, (px, py) in enumerate(pieces):
        assert torch.equal(px, frames[:, i:i + 2]) and torch.equal(py, frames[:, i + 2:i + 3])
    loss = model.loss(*pieces[0], 0)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # the routing learns through its bits


def test_frames_and_horizons_the_model_cannot_take_say_what_to_change():
    hparams = spec().settings_for("paper", "mmnist")
    hparams = {k: v for k, v in hparams.items() if k not in TRAIN_KEYS}
    with pytest.raises(UserError, match="divide by 16"):
        spec().build(Task("toy", 2, 2, (1, 40, 40)), hparams)
    with pytest.raises(UserError, match="halves the frame 5 times, so 48x48 must divide by 32"):
        spec().build(Task("toy", 2, 2, (1, 48, 48)), hparams)
    with pytest.raises(UserError, match="last two frames"):
        spec().build(Task("toy", 1, 2, (1, 64, 64)), hparams)


# -------------------------------------------------------------------------------- configs and sizes

@pytest.mark.parametrize("dataset", ["mmnist", "mfmnist", "mmnist_cifar", "kth", "kitticaltech", "human", "taxibj", "bair"])
def test_paper_profile_follows_openstl_configs(dataset):
    openstl = OPENSTL_CONFIGS[dataset]
    ours_name = "mmnist-cluttered" if dataset == "mmnist_cifar" else dataset
    ours = spec().settings_for("paper", ours_name, plugins.get_dataset(ours_name).hparams_like)
    for key in ("num_features", "scale", "routing_out_channels", "beta", "gamma", "coef"):
        assert ours[key] == openstl[key], key
    assert openstl["num_block"] == len(ours["num_features"]) and openstl["training"] is True
    channels = plugins.get_dataset(ours_name).shape[0]
    assert openstl["in_planes"] == 4 * channels + 1 + 4  # stbench derives it from the frame's channels
    train, _, _ = resolve(spec(), plugins.get_dataset(ours_name), "paper", {})
    assert train["lr"] == openstl.get("lr", 1e-3)  # OpenSTL's parser default where the file leaves it out
    assert train["schedule"] == openstl.get("sched", "onecycle")
    assert train["batch_size"] == openstl["batch_size"] == 16


# OpenSTL's model zoo (v0.3.0 docs, video_benchmarks.md): Params / FLOPs. OpenSTL counts FLOPs with fvcore on
# ONE training-mode pass over a [1, 3, C, H, W] input (api/train.py's input_dummy for dmvfn): every block, one
# predicted frame. fvcore there gives 0.2188 G (mmnist), 0.2382 G (mmnist-cifar), 0.8751 G (kth), 1.1911 G
# (kitticaltech), of which convolutions are 0.2171, 0.2353, 0.8683, 1.1764 G; the rest is upsampling, pooling
# and grid sampling, which stbench's counter leaves out. stbench counts every block at every predicted frame.
PUBLISHED = {"mmnist": ((1, 64, 64), 3.5, 0.2), "mfmnist": ((1, 64, 64), 3.5, 0.2),
             "mmnist-cluttered": ((3, 64, 64), 3.6, 0.2), "kth": ((1, 128, 128), 3.5, 0.88),
             "kitticaltech": ((3, 128, 160), 3.6, 1.2)}


@pytest.mark.parametrize("dataset", sorted(PUBLISHED))
def test_paper_profile_matches_published_params_and_flops_per_frame(dataset):
    shape, params_m, gflops = PUBLISHED[dataset]
    hparams = {k: v for k, v in spec().settings_for("paper", dataset).items() if k not in TRAIN_KEYS}
    with torch.device("meta"):
        model = spec().build(Task(dataset, 10, 10, shape), hparams)
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    per_frame = count_macs(model, Task(dataset, 10, 10, shape)) / 10 / 1e9
    if gflops < 0.5:  # printed to one significant digit
        assert round(per_frame, 1) == gflops
    else:
        assert per_frame == pytest.approx(gflops, rel=0.02)


def test_published_yaml_holds_the_model_zoo_sizes():
    from stbench.leaderboard import published

    tasks = {"mmnist": "mmnist-10-10", "mfmnist": "mfmnist-10-10", "mmnist-cluttered": "mmnist-cluttered-10-10",
             "kth": "kth-10-20", "kitticaltech": "kitticaltech-10-1"}
    for dataset, task in tasks.items():
        (entry,) = [e for e in published()["tasks"][task] if e["model"] == "dmvfn"]
        assert (entry["params_m"], entry["flops_g"]) == PUBLISHED[dataset][1:] and entry["source"] == "openstl-zoo-dmvfn"


def test_dmvfn_is_listed_with_the_recurrent_models():
    """It predicts frame by frame and feeds each prediction back (no hidden state, but no one-shot decoder)."""
    assert spec().family == "recurrent" and isinstance(build_case("dmvfn"), DMVFN)
