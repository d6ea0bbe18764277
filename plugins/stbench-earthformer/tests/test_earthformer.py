"""Earthformer: the authors' weights reproduce the authors' outputs, the paper configurations have the
published / reference sizes, initialisation follows the reference, rollout, optimizer groups, user errors."""
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import stbench_earthformer
from stbench import Task, UserError
from stbench.checkpoints import load_weights, read_checkpoint
from stbench.config import check_declarations
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_earthformer.model import EarthformerModel

FIXTURES = Path(__file__).parent / "fixtures"
CASES = ("mmnist", "sevir", "enso", "options", "globals")
TOLERANCE = 1e-5  # of the output's scale; today the outputs are identical


def registered():
    specs = []
    stbench_earthformer.stbench_register_models(register=specs.append)
    return specs[0]


SPEC = registered()


def fixture(name):
    io = torch.load(FIXTURES / f"{name}_io.pt", weights_only=True)
    task = Task("fixture", io["t_in"], io["t_out"], tuple(io["shape"]))
    return io, task, io["x_uint8"].float() / 255


def settings(profile, dataset):
    return SPEC.hparams_for(profile, dataset)


@pytest.mark.parametrize("name", CASES)
def test_reference_weights_reproduce_reference_output(name):
    io, task, x = fixture(name)
    model = SPEC.build(task, io["hparams"])
    checkpoint = read_checkpoint(FIXTURES / f"{name}.ckpt")
    assert checkpoint.format == "openstl-lightning"  # a Lightning .ckpt; its keys start with torch_nn_module.
    load_weights(model, checkpoint, SPEC)
    model.eval()
    with torch.no_grad():
        pred = model(x, task.t_out)
    scale = max(1.0, float(io["y"].abs().max()))
    assert pred.shape == io["y"].shape
    assert float((pred - io["y"]).abs().max()) <= TOLERANCE * scale
    torch.manual_seed(7)  # another draw of the same model is far from the reference output
    fresh = SPEC.build(task, io["hparams"]).eval()
    with torch.no_grad():
        assert float((fresh(x, task.t_out) - io["y"]).abs().max()) > 0.1 * scale


def test_released_state_dict_container_loads_too(tmp_path):
    # the authors' released .pt files are the network's bare state dict (the Lightning prefix removed)
    io, task, x = fixture("mmnist")
    state = torch.load(FIXTURES / "mmnist.ckpt", weights_only=True)["state_dict"]
    bare = tmp_path / "earthformer_mmnist.pt"
    torch.save({k[len("torch_nn_module."):]: v for k, v in state.items()}, bare)
    model = SPEC.build(task, io["hparams"])
    load_weights(model, read_checkpoint(bare), SPEC)
    with torch.no_grad():
        pred = model.eval()(x, task.t_out)
    assert float((pred - io["y"]).abs().max()) <= TOLERANCE * max(1.0, float(io["y"].abs().max()))


def test_a_checkpoint_of_another_size_is_one_clear_line():
    io, task, _ = fixture("mmnist")
    model = SPEC.build(task, dict(io["hparams"], base_units=32))
    with pytest.raises(UserError, match="shapes differ"):
        load_weights(model, read_checkpoint(FIXTURES / "mmnist.ckpt"), SPEC)


# Params / MACs of the authors' code for their configurations (counted with torch's FlopCounterMode on their
# CuboidTransformerModel, MACs = FLOPs / 2), and the paper's figures where it gives them.
REFERENCE = {
    "mmnist": ((10, 10, (1, 64, 64)), 7_700_893, 33_713_094_656),
    "sevir": ((13, 12, (1, 384, 384)), 8_659_677, 223_576_997_888),
    "enso": ((12, 14, (1, 24, 48)), 1_394_325, 6_702_612_480),
}
PUBLISHED = {"mmnist": (7.6e6, 33.7e9)}  # Earthformer paper, the Moving MNIST comparison table: 7.6M, 33.7 GFLOPs


@pytest.mark.parametrize("dataset", sorted(REFERENCE))
def test_paper_configs_match_the_reference_code_and_the_paper(dataset):
    (t_in, t_out, shape), params, macs = REFERENCE[dataset]
    task = Task(dataset, t_in, t_out, shape)
    with torch.device("meta"):
        model = SPEC.build(task, settings("paper", dataset))
    assert count_params(model) == params
    assert count_macs(model, task) == macs
    if dataset in PUBLISHED:
        published_params, published_macs = PUBLISHED[dataset]
        assert abs(params / published_params - 1) < 0.02 and abs(macs / published_macs - 1) < 0.02


def test_the_config_files_moving_mnist_model_is_the_paper_ablation_without_global_vectors():
    task = Task("mmnist", 10, 10, (1, 64, 64))
    with torch.device("meta"):
        model = SPEC.build(task, dict(settings("paper", "mmnist"), num_global_vectors=0))
    assert count_params(model) == 6_702_109 and count_macs(model, task) == 33_327_677_440


def test_declarations_are_valid_and_every_profile_builds():
    check_declarations(SPEC)
    for profile in ("smoke", "quick"):
        model = SPEC.build(Task("mmnist", 10, 10, (1, 64, 64)), settings(profile, "mmnist"))
        assert count_params(model) > 0


def test_initialisation_follows_the_reference():
    torch.manual_seed(0)
    hparams = dict(settings("paper", "mmnist"), enc_depth=[2, 2], dec_depth=[2, 2])
    model = SPEC.build(Task("mmnist", 10, 10, (1, 64, 64)), hparams)
    attn = model.encoder.blocks[1][0].attn_l[0]
    # linear layers: Kaiming normal, fan-in, linear gain (std 1/sqrt(fan_in)), zero bias
    assert attn.qkv.weight.std().item() == pytest.approx(1 / math.sqrt(128), rel=0.05)
    ffn = model.encoder.blocks[1][0].ffn_l[0]
    assert ffn.ffn_2.weight.std().item() == pytest.approx(1 / math.sqrt(512), rel=0.05)
    assert torch.count_nonzero(ffn.ffn_1.bias) == 0
    # relative-position tables, positional embeddings, global vectors: truncated normal, std 0.02
    assert attn.relative_position_bias_table.std().item() == pytest.approx(0.02, rel=0.3)
    assert model.enc_pos_embed.HW_embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.init_global_vectors.std().item() == pytest.approx(0.02, rel=0.3)
    # upsampling convolutions: Kaiming normal, fan-out, leaky-ReLU(0.1) gain
    conv = model.decoder.upsample_layers[0].conv
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 1.01) / math.sqrt(fan_out), rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0
    # left at PyTorch's default (uniform within 1/sqrt(fan_in)) as the reference leaves them
    for layer in (attn.global_proj, model.initial_encoder.conv_block[0]):
        fan_in = layer.weight[0].numel()
        bound = 1 / math.sqrt(fan_in)
        assert layer.weight.abs().max().item() <= bound + 1e-7
        assert layer.weight.abs().max().item() > 0.8 * bound
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in model.modules()
               if isinstance(m, nn.LayerNorm))


def test_longer_horizons_roll_out_on_the_latest_frames_and_shorter_ones_truncate():
    torch.manual_seed(0)
    task = Task("toy", 4, 3, (1, 16, 16))
    model = SPEC.build(task, settings("smoke", "mmnist")).eval()
    x = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        first = model(x, 3)
        second = model(torch.cat([x, first], dim=1)[:, -4:], 3)
        assert torch.allclose(model(x, 5), torch.cat([first, second[:, :2]], dim=1), atol=1e-6)
        assert torch.equal(model(x, 2), first[:, :2])
        # the network itself is channels-last, as the authors'
        direct = model.predict(x.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        assert torch.allclose(direct, first, atol=1e-6)


def test_weight_decay_spares_layer_norms_and_biases():
    model = SPEC.build(Task("toy", 4, 4, (1, 16, 16)), settings("smoke", "mmnist"))
    decay, rest = model.optimizer_param_groups({})
    assert rest["weight_decay"] == 0.0 and "weight_decay" not in decay
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(decay["params"]) + len(rest["params"]) == len(names)
    spared = {names[id(p)] for p in rest["params"]}
    assert "encoder.blocks.0.0.attn_l.0.norm.weight" in spared and "z_proj.bias" in spared
    assert "encoder.blocks.0.0.attn_l.0.qkv.weight" not in spared and "init_global_vectors" not in spared


@pytest.mark.parametrize("change, message", [
    ({"self_pattern": "swin"}, "self-attention pattern"),
    ({"cross_pattern": "cross_3x3"}, "cross-attention pattern"),
    ({"global_dim_ratio": 2}, "separate_global_qkv"),
    ({"initial_downsample_scale": [2, 2, 2]}, "merges time"),
    ({"base_units": 24}, "multiple of 16"),
    ({"enc_depth": [1, 1], "dec_depth": [1]}, "dec_depth"),
    ({"num_heads": 3}, "num_heads"),
    ({"padding_type": "reflect"}, "padding_type"),
    ({"norm_layer": "rms_norm"}, "norm_layer"),
    ({"attn_linear_init_mode": "1"}, "attn_linear_init_mode"),
    ({"self_pattern": ["axial"]}, "one per block"),
])
def test_unsupported_options_are_one_clear_line(change, message):
    with pytest.raises(UserError, match=message) as error:
        SPEC.build(Task("toy", 4, 4, (1, 16, 16)), dict(settings("smoke", "mmnist"), **change))
    assert "\n" not in str(error.value)


def test_input_frames_other_than_built_are_refused():
    model = SPEC.build(Task("toy", 4, 4, (1, 16, 16)), settings("smoke", "mmnist"))
    with pytest.raises(UserError, match="built for 4 input frames"):
        model(torch.rand(1, 5, 1, 16, 16), 4)


def test_model_class_is_exported_lazily():
    assert stbench_earthformer.EarthformerModel is EarthformerModel


def test_the_paper_configs_last_global_update_feeds_nothing_as_in_the_reference():
    # With global vectors in the encoder only (the paper's Moving MNIST and SEVIR models), the last encoder
    # attention's updated global vectors are never read: its global_proj gets no gradient. The reference
    # has the same parameters (its checkpoints carry them), so they are kept; see README.
    task = Task("toy", 4, 4, (1, 16, 16))
    model = SPEC.build(task, dict(settings("paper", "mmnist"), base_units=16, enc_depth=[1, 1], dec_depth=[1, 1]))
    model.loss(torch.rand(1, 4, 1, 16, 16), torch.rand(1, 4, 1, 16, 16), 0).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == ["encoder.blocks.1.0.attn_l.2.global_proj.weight", "encoder.blocks.1.0.attn_l.2.global_proj.bias"]
    assert model.unused_parameters  # so DistributedDataParallel looks for them
    assert not SPEC.build(task, dict(settings("smoke", "mmnist"))).unused_parameters
