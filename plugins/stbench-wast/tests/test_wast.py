"""WaST: OpenSTL's weights reproduce OpenSTL's outputs and training loss, the wavelet transforms, sizes, schedule."""
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
from stbench_wast import ARCH_KEYS, WaSTModel, high_frequency_focal_loss
from stbench_wast.model import make_divisible
from stbench_wast.wavelet import dwt, haar_filters_2d, haar_filters_3d, idwt

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
OPENSTL_SIZES = json.loads((FIXTURES / "openstl_sizes.json").read_text())
OPENSTL_CONFIG = json.loads((FIXTURES / "openstl_wast_config.json").read_text())
TOLERANCE = 1e-5  # at the output's own scale


def spec():
    return plugins.get_model("wast")


def fixture_model(name, seed=0):
    settings = MANIFEST["models"][name]["settings"]
    t, c, h, w = settings["in_shape"]
    torch.manual_seed(seed)
    model = spec().build(Task("openstl", t, t, (c, h, w)),
                         {"encoder_dim": settings["encoder_dim"], "block_list": settings["block_list"],
                          "mlp_ratio": settings["mlp_ratio"]})
    return model, t


def build(profile="smoke", task=Task("toy", 4, 4, (1, 16, 16)), seed=0, **overrides):
    _, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), profile, overrides)
    torch.manual_seed(seed)
    return spec().build(task, hparams)


@pytest.fixture(scope="module")
def wavelet():
    return torch.load(FIXTURES / "wavelet.pt", weights_only=True)


# ------------------------------------------------------------------------------------------ fidelity

@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_openstl_weights_reproduce_openstl_outputs(name):
    entry = MANIFEST["models"][name]
    model, t = fixture_model(name)
    checkpoint = read_checkpoint(FIXTURES / entry["file"])
    notes = load_weights(model, checkpoint, spec())
    assert notes["keys_loaded"] == len(model.state_dict())
    # dropped: the two Haar filter buffers (derived here) and every block's never-used layer_scale_2
    dropped = {d["key"] for d in notes["dropped"]}
    assert {"wavelet_embed1.DWT.filters", "wavelet_recon1.IDWT.filters"} <= dropped
    assert sum(d["parameters"] for d in notes["dropped"] if d["key"].endswith("layer_scale_2")) \
        == entry["unused_layer_scale_2"]
    # the derived filters are the ones OpenSTL took from PyWavelets
    assert torch.equal(checkpoint.state["wavelet_embed1.DWT.filters"], haar_filters_3d())
    assert count_params(model) + entry["unused_layer_scale_2"] == entry["parameters"]
    outputs = torch.load(FIXTURES / entry["outputs"], weights_only=True)
    model.eval()
    horizons = sorted(int(k[5:]) for k in outputs if k.startswith("pred_"))
    assert horizons == [t, 2 * t + 1]  # one pass, and two fed-back passes plus one frame of a third
    with torch.no_grad():
        for horizon in horizons:
            expected = outputs[f"pred_{horizon}"]
            pred = model(outputs["x"], horizon)
            assert pred.shape == expected.shape
            scale = max(1.0, float(expected.abs().max()))
            assert float((pred - expected).abs().max()) <= TOLERANCE * scale
        assert torch.equal(model(outputs["x"], t // 2), model(outputs["x"], t)[:, :t // 2])
    # the weights matter: a fresh draw of the same model is far from OpenSTL's output
    fresh, _ = fixture_model(name, seed=123)
    with torch.no_grad():
        assert float((fresh.eval()(outputs["x"], t) - outputs[f"pred_{t}"]).abs().max()) > 1e-2


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_training_loss_is_openstls(name):
    """openstl/methods/wast.py: MSE + HighFocalFrequencyLoss(loss_weight=0.001), batch statistics, no drop path."""
    entry = MANIFEST["models"][name]
    model, t = fixture_model(name)
    load_weights(model, read_checkpoint(FIXTURES / entry["file"]), spec())
    outputs = torch.load(FIXTURES / entry["outputs"], weights_only=True)
    model.train()
    model.set_drop_path(0.0)
    pred = model(outputs["x"], t)
    mse = F.mse_loss(pred, outputs["y"]).detach()
    focal = 0.001 * high_frequency_focal_loss(pred, outputs["y"]).detach()
    assert float(mse) == pytest.approx(float(outputs["train_mse"]), rel=1e-5)
    assert float(focal) == pytest.approx(float(outputs["train_hffl"]), rel=1e-4)
    torch.manual_seed(0)
    assert model.loss(outputs["x"], outputs["y"], 0).item() == pytest.approx(float(outputs["train_loss"]), rel=1e-5)


@pytest.mark.parametrize("size", ["even", "odd"])
def test_haar_transforms_equal_the_references(wavelet, size):
    """Forward and inverse 3-D and forward 2-D transforms against OpenSTL's (PyWavelets' filter bank), odd
    lengths zero-padded at their end as there."""
    data = wavelet[f"dwt3d_{size}_input"]
    bands = dwt(data, haar_filters_3d())
    assert torch.allclose(torch.stack(bands), wavelet[f"dwt3d_{size}"], atol=1e-6)
    assert torch.allclose(idwt(bands, haar_filters_3d()), wavelet[f"idwt3d_{size}"], atol=1e-6)
    data2 = wavelet[f"dwt2d_{size}_input"]
    assert torch.allclose(torch.stack(dwt(data2, haar_filters_2d())), wavelet[f"dwt2d_{size}"], atol=1e-6)
    if size == "even":  # one Haar level is orthonormal: the inverse restores the input
        assert torch.allclose(idwt(bands, haar_filters_3d()), data, atol=1e-5)


@pytest.mark.parametrize("size", ["even", "odd"])
def test_high_frequency_focal_loss_equals_the_references(wavelet, size):
    ours = high_frequency_focal_loss(wavelet[f"hffl_{size}_pred"], wavelet[f"hffl_{size}_true"])
    assert float(ours) == pytest.approx(float(wavelet[f"hffl_{size}"]), rel=1e-5)


def test_focal_loss_ignores_low_frequencies_and_has_no_gradient_through_its_weights():
    true = torch.zeros(1, 1, 1, 20, 20)
    flat = torch.full_like(true, 0.5)  # a constant offset lives in the zero frequency only
    assert float(high_frequency_focal_loss(flat, true)) == 0.0
    checker = true.clone()
    checker[..., ::4, :] = 1.0
    pred = checker.clone().requires_grad_(True)
    loss = high_frequency_focal_loss(pred + 0.1 * torch.randn_like(pred), true)
    assert loss.item() > 0
    loss.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0


# ------------------------------------------------------------------------------------------- sizes

def paper_model(task):
    hparams = {k: v for k, v in spec().settings_for("paper", task.dataset).items() if k not in TRAIN_KEYS}
    with torch.device("meta"):
        return spec().build(task, hparams)


def same_padded_macs(model, task):
    """MACs of the blocks' tall, wide and small depthwise branches ('same' padding, which fvcore skips)."""
    h, w = task.shape[1:]
    total = 0
    for blocks, (bh, bw) in ((model.encoder_blocks, (h, w)), (model.bottleneck_blocks, (h // 2, w // 2)),
                             (model.decoder_blocks, (h, w))):
        for block in blocks:
            for branch in (block.tall, block.wide, block.local):
                conv = branch[0]
                total += conv.out_channels * bh * bw * conv.kernel_size[0] * conv.kernel_size[1]
    return total


@pytest.mark.parametrize("task", [Task("taxibj", 4, 4, (2, 32, 32)), Task("mmnist", 10, 10, (1, 64, 64))],
                         ids=["taxibj-4-4", "mmnist-10-10"])
def test_paper_sizes_against_openstls_code(task):
    """OpenSTL publishes no WaST figures; its own model at the paper config, counted with fvcore
    (fixtures/openstl_sizes.json), gives the parameters (with layer_scale_2, never used) and the
    convolution MACs except those of the 'same'-padded convolutions, which fvcore cannot see
    (aten::_convolution_mode, 3 per block); fvcore also adds BatchNorm and pooling, stbench counts neither."""
    openstl = OPENSTL_SIZES[task.name]
    model = paper_model(task)
    assert count_params(model) + openstl["unused_layer_scale_2"] == openstl["parameters"]
    fv = openstl["fvcore_eval"]
    blocks = sum(model.block_list)
    assert fv["unsupported_ops"]["aten::_convolution_mode"] == 3 * blocks
    macs = count_macs(model, task)
    assert macs == fv["by_operator"]["conv"] + same_padded_macs(model, task)
    if task.dataset == "taxibj":
        assert (count_params(model), macs) == (5_131_222, 1_278_631_936)


def test_paper_profile_follows_openstls_config():
    openstl = OPENSTL_CONFIG["taxibj"]
    ours = spec().settings_for("paper", "taxibj")
    for key in ("encoder_dim", "block_list", "mlp_ratio", "loss_weight", "drop_path", "cutmode", "cutoff",
                "lr", "batch_size"):
        assert ours[key] == openstl[key], key
    assert ours["schedule"] == openstl["sched"] and openstl["warmup_epoch"] == 0
    assert (ours["large_kernel"], ours["bottleneck_kernel"]) == (51, 21)  # WaST_level1's literals
    train, hparams, _ = resolve(spec(), plugins.get_dataset("taxibj"), "paper", {})
    assert train["epochs"] == 50 and set(hparams) == set(ARCH_KEYS)
    # any other dataset builds the same model; epochs are the dataset's
    train, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), "paper", {})
    assert hparams["encoder_dim"] == 20 and train["epochs"] == 200


# ---------------------------------------------------------------------------------------- behaviour

def test_drop_path_schedule_follows_openstls_drop_scheduler():
    model = build(drop_path=0.25, cutmode="late", cutoff=2, block_list=[2, 3, 1])
    rates = lambda: [b.drop_path.rate for b in [*model.encoder_blocks, *model.bottleneck_blocks,
                                                *model.decoder_blocks]]  # noqa: E731
    assert rates() == [0.0] * 6
    model.on_epoch_start(1)
    assert rates() == [0.0] * 6
    model.on_epoch_start(2)
    assert rates() == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
    early = build(drop_path=0.1, cutmode="early", cutoff=1)
    assert early.scheduled_rate(0) == 0.1 and early.scheduled_rate(1) == 0.0
    assert build(drop_path=0.1, cutmode="standard").scheduled_rate(7) == 0.1


def test_drop_path_acts_in_training_only():
    model = build(drop_path=0.5, block_list=[1, 2, 1])
    for block in model.bottleneck_blocks:
        block.scale.data.fill_(1.0)
    x = torch.rand(4, 4, 1, 16, 16)
    model.eval()
    with torch.no_grad():
        a, b = model(x, 4), model(x, 4)
    assert torch.equal(a, b)
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        c = model(x, 4)
        torch.manual_seed(1)
        d = model(x, 4)
    assert not torch.allclose(c, d)


def test_loss_weight_zero_is_plain_mse():
    model = build(loss_weight=0.0)
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 4, 1, 16, 16)
    model.eval()
    with torch.no_grad():
        assert model.loss(x, y, 0).item() == pytest.approx(F.mse_loss(model(x, 4), y).item(), rel=1e-6)
        weighted = build(loss_weight=1.0).eval()
        assert weighted.loss(x, y, 0).item() > F.mse_loss(weighted(x, 4), y).item()


def test_make_divisible_is_timms_rule():
    assert [make_divisible(v) for v in (4, 36, 60, 48, 120, 13)] == [8, 40, 64, 48, 120, 16]


def test_family_and_profiles():
    assert spec().family == "recurrent-free"
    for profile in ("paper", "quick", "smoke"):
        _, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), profile, {})
        assert set(hparams) == set(ARCH_KEYS)
    assert isinstance(build(), WaSTModel)


@pytest.mark.parametrize("task, change, message", [
    (Task("sevir", 13, 12, (1, 16, 16)), {}, "T_in, H and W must be even"),
    (Task("toy", 4, 4, (1, 15, 16)), {}, "must be even"),
    (Task("toy", 4, 4, (1, 16, 16)), {"encoder_dim": 0}, "encoder_dim"),
    (Task("toy", 4, 4, (1, 16, 16)), {"block_list": [1, 1]}, "block_list must be three"),
    (Task("toy", 4, 4, (1, 16, 16)), {"large_kernel": 4}, "odd"),
    (Task("toy", 4, 4, (1, 16, 16)), {"cutmode": "middle"}, "cutmode must be one of"),
    (Task("toy", 4, 4, (1, 16, 16)), {"drop_path": 1.0}, "drop_path"),
    (Task("toy", 4, 4, (1, 16, 16)), {"loss_weight": -1.0}, "loss_weight"),
])
def test_bad_settings_are_one_line_user_errors(task, change, message):
    with pytest.raises(UserError, match=message) as error:
        build(task=task, **change)
    assert "\n" not in str(error.value)
