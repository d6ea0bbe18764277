"""OpenSTL's own weights and outputs (tests/fixtures/openstl) reproduced through stbench.checkpoints."""
import json
from pathlib import Path

import pytest
import torch

from stbench import UserError, plugins
from stbench.checkpoints import FORMATS, read_checkpoint, load_weights, rename_key
from stbench.config import resolve

FIXTURES = Path(__file__).parent / "fixtures" / "openstl"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
MODELS = sorted(MANIFEST["models"])
# float32 rounding of channels-last paths and reassociated sums: 1e-5 at the output's own scale
TOLERANCE = 1e-5


def build(name, **overrides):
    """The model as `stbench eval --profile paper --set ...` builds it, at the fixture's small widths."""
    spec = plugins.get_model(name)
    task = plugins.resolve_task(MANIFEST["task"])
    settings = MANIFEST["settings"]["recurrent" if spec.family == "recurrent" else "simvp"]
    _, hparams, _ = resolve(spec, plugins.get_dataset(task.dataset), "paper", {**settings, **overrides})
    return spec, spec.build(task, hparams)


def fixture_path(name):
    return FIXTURES / MANIFEST["models"][name]["file"]


@pytest.fixture(scope="module")
def clips():
    return torch.load(FIXTURES / MANIFEST["input"], weights_only=True)


def test_every_shared_model_and_every_container_is_covered():
    assert set(MODELS) == {"convlstm", "predrnn", "predrnnpp", "predrnnv2", "simvp", "simvpv2", "tau",
                           "uniformer", "mlpmixer", "convnext"}
    containers = {entry["container"] for entry in MANIFEST["models"].values()}
    assert containers == {"bare", "state_dict", "lightning", "ddp", "state_dict+ddp"}


@pytest.mark.parametrize("name", MODELS)
def test_openstl_weights_reproduce_openstl_output(name, clips):
    spec, model = build(name)
    checkpoint = read_checkpoint(fixture_path(name))
    notes = load_weights(model, checkpoint, spec)
    model.eval()
    with torch.no_grad():
        pred = model(clips["x"], clips["y"].shape[1])
    expected = torch.load(FIXTURES / MANIFEST["models"][name]["output"], weights_only=True)
    assert pred.shape == expected.shape
    scale = max(1.0, float(expected.abs().max()))
    assert float((pred - expected).abs().max()) <= TOLERANCE * scale
    # the weights really matter: another draw of the same model is far from OpenSTL's output
    torch.manual_seed(123)
    _, fresh = build(name)
    fresh.eval()
    with torch.no_grad():
        assert float((fresh(clips["x"], 10) - expected).abs().max()) > 1e-2
    assert notes["format"] in FORMATS and notes["sha256"] == checkpoint.sha256
    assert notes["keys_loaded"] == len(model.state_dict())


@pytest.mark.parametrize("name, fmt, prefixes", [
    ("convlstm", "openstl-pth", []),          # bare state dict
    ("predrnn", "openstl-pth", []),           # {'epoch', 'optimizer', 'state_dict', 'scheduler'}
    ("predrnnpp", "openstl-lightning", ["model."]),
    ("predrnnv2", "openstl-pth", ["module."]),
    ("convnext", "openstl-pth", ["module."]),  # {'state_dict'} with DDP keys
])
def test_containers_are_recognised(name, fmt, prefixes):
    checkpoint = read_checkpoint(fixture_path(name))
    assert (checkpoint.format, checkpoint.prefixes_stripped) == (fmt, prefixes)
    assert not any(key.startswith(("module.", "model.")) for key in checkpoint.state)


def test_unused_openstl_parameters_are_dropped_and_named():
    spec, model = build("convlstm")
    notes = load_weights(model, read_checkpoint(fixture_path("convlstm")), spec)
    dropped = {item["key"]: item["parameters"] for item in notes["dropped"]}
    # two layers of 8 hidden channels: conv_o 8x16x5x5 and the cell's conv_last 8x16x1x1 each
    assert dropped == {"cell_list.0.conv_o.0.weight": 3200, "cell_list.0.conv_last.weight": 128,
                       "cell_list.1.conv_o.0.weight": 3200, "cell_list.1.conv_last.weight": 128}
    assert notes["dropped_parameters"] == 6656
    spec, model = build("predrnnpp")
    notes = load_weights(model, read_checkpoint(fixture_path("predrnnpp")), spec)
    assert sorted(item["key"] for item in notes["dropped"]) == ["cell_list.0.conv_o.0.weight",
                                                               "cell_list.1.conv_o.0.weight"]
    for name in ("predrnn", "tau"):  # nothing is dropped where OpenSTL uses every parameter
        spec, model = build(name)
        assert load_weights(model, read_checkpoint(fixture_path(name)), spec)["dropped"] == []


def test_stbench_checkpoint_round_trip(tmp_path):
    """A checkpoint as `stbench run` writes it each epoch loads as format `stbench`, unrenamed."""
    spec, model = build("tau")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[1e-3], total_steps=10)
    path = tmp_path / "checkpoint.pt"
    torch.save({"config_hash": "abc", "epoch": 2, "step": 20, "model": model.state_dict(),
                "optimizers": [optimizer.state_dict()], "schedule": schedule.state_dict(),
                "torch_rng": torch.get_rng_state(), "epoch_seconds": [1.0, 1.1], "losses": [0.3, 0.2]}, path)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.format, checkpoint.epoch, checkpoint.prefixes_stripped) == ("stbench", 2, [])
    torch.manual_seed(5)
    _, other = build("tau")
    notes = load_weights(other, checkpoint, spec)
    assert notes["keys_renamed"] == 0 and notes["dropped"] == []
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


def test_own_checkpoints_get_no_foreign_renaming(tmp_path):
    """OpenSTL's names in a file that says it is stbench's are an error, not silently mapped."""
    spec, model = build("tau")
    path = tmp_path / "checkpoint.pt"
    torch.save({"config_hash": "x", "epoch": 1, "model": torch.load(fixture_path("tau"), weights_only=True)[
        "state_dict"]}, path)
    with pytest.raises(UserError, match="shares no key with tau"):
        load_weights(model, read_checkpoint(path), spec)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"does not exist.*\.pth or \.ckpt"):
        read_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(UserError, match="is a folder"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all\n", b"PK\x03\x04garbage"])
def test_file_that_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint") as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value)


def test_truncated_checkpoint(tmp_path):
    data = fixture_path("simvp").read_bytes()
    path = tmp_path / "simvp.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint.*truncated"):
        read_checkpoint(path)


def test_checkpoint_without_weights(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 1e-3}, path)
    with pytest.raises(UserError, match=r"holds no model weights \(found epoch, lr\)"):
        read_checkpoint(path)


def test_checkpoint_with_python_objects_is_refused_without_running_them(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": Path("/tmp")}, path)
    with pytest.raises(UserError, match="weights_only=True"):
        read_checkpoint(path)


def test_checkpoint_of_another_model():
    spec, model = build("simvpv2")
    with pytest.raises(UserError) as error:  # TAU's squeeze-excitation is a gSTA stranger
        load_weights(model, read_checkpoint(fixture_path("tau")), spec)
    message = str(error.value)
    assert "does not fit simvpv2" in message and "unknown keys" in message
    assert "hid.enc.0.block.attn.spatial_gating_unit.fc.0.weight" in message and "\n" not in message
    spec, model = build("simvp")
    with pytest.raises(UserError, match="shares no key with simvp.*another model"):
        load_weights(model, read_checkpoint(fixture_path("predrnn")), spec)


def test_checkpoint_of_another_shape():
    spec, model = build("convnext", hid_t=48)
    with pytest.raises(UserError, match=r"shapes differ.*hid\.enc\.0\.reduction\.weight \[32, 80, 1, 1\] vs "
                                        r"\[48, 80, 1, 1\]"):
        load_weights(model, read_checkpoint(fixture_path("convnext")), spec)
    spec, model = build("predrnn", num_hidden=[8, 8, 8])
    with pytest.raises(UserError, match=r"missing \(cells\.2\.conv_x\.weight"):
        load_weights(model, read_checkpoint(fixture_path("predrnn")), spec)


def test_a_failed_load_leaves_the_model_untouched():
    spec, model = build("convnext", hid_t=48)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(UserError):
        load_weights(model, read_checkpoint(fixture_path("convnext")), spec)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_rename_prefers_the_rule_whose_result_exists():
    rules = ((r"a\.(\d+)\.", r"x.\1.conv."), (r"a\.(\d+)\.", r"x.\1."))
    assert rename_key("a.0.w", rules, {"x.0.w": 0}) == "x.0.w"
    assert rename_key("a.0.w", rules, {"x.0.conv.w": 0}) == "x.0.conv.w"
    assert rename_key("a.0.w", rules, {}) == "x.0.conv.w"  # reported under the first rule's name
    assert rename_key("b.w", rules, {}) == "b.w"


def test_layer_norm_cells_keep_their_norm_keys():
    """With layer_norm OpenSTL's gate `conv_x.0`/`conv_x.1` (conv, LayerNorm) maps one to one."""
    spec, model = build("predrnnpp", layer_norm=1)
    own = model.state_dict()
    assert rename_key("cell_list.0.conv_x.0.weight", spec.checkpoint_rename, own) == "cells.0.conv_x.0.weight"
    assert rename_key("cell_list.0.conv_x.1.bias", spec.checkpoint_rename, own) == "cells.0.conv_x.1.bias"
    assert rename_key("gradient_highway.z_concat.1.weight", spec.checkpoint_rename, own) in own



def test_an_ncsnv2_list_container_reads_with_its_ema_shadow(tmp_path):
    """MCVD's runners save [model, optimizer, epoch, step, EMA shadow]; the shadow is what gets loaded."""
    model = {"module.w": torch.zeros(2), "module.b": torch.ones(1)}
    path = tmp_path / "checkpoint_250000.pt"
    torch.save([model, {"state": {}, "param_groups": []}, 7, 250000, {"module.w": torch.full((2,), 3.0)}], path)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.format, checkpoint.prefixes_stripped, checkpoint.epoch) == ("ncsnv2-list", ["module."], 7)
    assert torch.equal(checkpoint.state["w"], torch.full((2,), 3.0)) and torch.equal(checkpoint.state["b"], torch.ones(1))
