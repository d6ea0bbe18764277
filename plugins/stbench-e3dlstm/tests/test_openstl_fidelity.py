"""OpenSTL's E3DLSTM (tests/fixtures, see its README) reproduced through stbench.checkpoints: weights and
outputs, the containers, the initial weights' statistics and the paper profile against OpenSTL's config files."""
import json
import math
from pathlib import Path

import pytest
import torch

from stbench import plugins
from stbench.checkpoints import read_checkpoint, load_weights, rename_key
from stbench.config import resolve

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
TOLERANCE = 1e-5  # at the output's own scale; the rollout is in fact reproduced exactly


def build(settings, seed=None):
    """The model as `stbench eval --profile paper --set ...` builds it for the fixture's task."""
    spec = plugins.get_model("e3dlstm")
    task = plugins.resolve_task(MANIFEST["task"])
    _, hparams, _ = resolve(spec, plugins.get_dataset(task.dataset), "paper", settings)
    if seed is not None:
        torch.manual_seed(seed)
    return spec, spec.build(task, hparams)


@pytest.fixture(scope="module")
def clips():
    return torch.load(FIXTURES / MANIFEST["input"], weights_only=True)


@pytest.mark.parametrize("name", sorted(MANIFEST["fixtures"]))
def test_openstl_weights_reproduce_openstl_output(name, clips):
    entry = MANIFEST["fixtures"][name]
    spec, model = build(entry["settings"])
    checkpoint = read_checkpoint(FIXTURES / entry["file"])
    notes = load_weights(model, checkpoint, spec)
    assert notes["keys_loaded"] == len(model.state_dict()) and not notes["dropped"]
    model.eval()
    with torch.no_grad():
        pred = model(clips["x"], clips["y"].shape[1])
    expected = torch.load(FIXTURES / entry["output"], weights_only=True)
    assert pred.shape == expected.shape
    scale = max(1.0, float(expected.abs().max()))
    assert float((pred - expected).abs().max()) <= TOLERANCE * scale
    # the weights really matter: another draw of the same model is far from OpenSTL's output
    _, fresh = build(entry["settings"], seed=123)
    with torch.no_grad():
        assert float((fresh.eval()(clips["x"], 10) - expected).abs().max()) > 1e-2


@pytest.mark.parametrize("name, fmt, prefixes", [
    ("e3dlstm", "openstl-lightning", ["model."]),   # Lightning .ckpt
    ("e3dlstm_ln_stride2", "openstl-pth", []),      # {'epoch', 'optimizer', 'state_dict', 'scheduler'}
])
def test_containers_are_recognised(name, fmt, prefixes):
    checkpoint = read_checkpoint(FIXTURES / MANIFEST["fixtures"][name]["file"])
    assert (checkpoint.format, checkpoint.prefixes_stripped) == (fmt, prefixes)
    assert checkpoint.epoch == 3


def test_every_openstl_key_has_one_stbench_name():
    """Both fixtures' keys (with and without LayerNorm) map one to one onto the model's."""
    for entry in MANIFEST["fixtures"].values():
        spec, model = build(entry["settings"])
        own = model.state_dict()
        state = read_checkpoint(FIXTURES / entry["file"]).state
        renamed = {rename_key(key, spec.checkpoint_rename, own) for key in state}
        assert renamed == set(own)


def test_initial_weights_follow_openstl():
    """PyTorch's default initialisation in both: each tensor's mean and spread as OpenSTL's fresh model."""
    reference = MANIFEST["init_statistics"]
    spec, model = build(reference["settings"], seed=0)
    own = model.state_dict()
    assert sum(v.numel() for v in own.values()) == sum(s["numel"] for s in reference["tensors"].values())
    for key, stats in reference["tensors"].items():
        ours = own[rename_key(key, spec.checkpoint_rename, own)]
        assert ours.numel() == stats["numel"], key
        if stats["std"] == 0:  # LayerNorm: ones and zeros
            assert torch.all(ours == stats["mean"]), key
            continue
        assert float(ours.std()) == pytest.approx(stats["std"], rel=0.1), key
        assert abs(float(ours.mean()) - stats["mean"]) < 5 * stats["std"] / math.sqrt(stats["numel"]), key


CONFIGS = MANIFEST["configs"]["values"]


@pytest.mark.parametrize("dataset", sorted(CONFIGS))
def test_paper_profile_is_openstls_config(dataset):
    spec = plugins.get_model("e3dlstm")
    ours = spec.settings_for("paper", dataset)
    theirs = CONFIGS[dataset]
    assert theirs["reverse_scheduled_sampling"] == 0 and theirs["scheduled_sampling"] == 1
    for key in ("num_hidden", "filter_size", "stride", "patch_size", "layer_norm", "lr", "schedule",
                "sampling_stop_iter", "sampling_start_value", "sampling_changing_rate"):
        assert ours.get(key, "onecycle" if key == "schedule" else None) == theirs[key], key
    assert ours["batch_size"] == theirs["global_batch_size"]
