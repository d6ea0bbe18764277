"""SwinLSTM: OpenSTL's and the authors' weights reproduce their outputs and losses; sizes, schedules, configs."""
import fnmatch
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stbench import Task, UserError, plugins
from stbench.checkpoints import load_weights, read_checkpoint, rename_key
from stbench.config import TRAIN_KEYS, resolve
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_swinlstm import REFERENCE_KEYS, REFERENCE_UNUSED, SwinBlock, SwinLSTM

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
SIZES = json.loads((FIXTURES / "openstl_sizes.json").read_text())
INIT = json.loads((FIXTURES / "init_statistics.json").read_text())
CONFIGS = json.loads((FIXTURES / "openstl_swinlstm_configs.json").read_text())
TOLERANCE = 1e-5  # at the output's own scale; in practice the outputs are identical


def spec():
    return plugins.get_model("swinlstm")


def paper_hparams(dataset="mmnist"):
    return {k: v for k, v in spec().settings_for("paper", dataset).items() if k not in TRAIN_KEYS}


def build(task, seed=0, dataset="mmnist", **settings):
    """The paper-profile model with ``settings`` over it (as `stbench eval --set ...` builds it)."""
    torch.manual_seed(seed)
    return spec().build(task, {**paper_hparams(dataset), **settings})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The fixtures' models are tiny: one thread is fastest, and immune to a busy machine's thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips():
    return {name: frames.float() / 255 for name, frames in torch.load(FIXTURES / "input.pt", weights_only=True).items()}


def fixture_case(name, clips):
    entry = MANIFEST["models"][name]
    frames = clips[entry["clips"]]
    t_in, t_out = entry["t_in"], entry["t_out"]
    task = Task("mmnist", t_in, t_out, tuple(frames.shape[2:]))
    return entry, task, frames[:, :t_in], frames[:, t_in:t_in + t_out]


# ------------------------------------------------------------------------------------------ fidelity

@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_reference_weights_reproduce_reference_outputs(name, clips):
    entry, task, x, _ = fixture_case(name, clips)
    model = build(task, **entry["settings"]).eval()
    checkpoint = read_checkpoint(FIXTURES / entry["file"])
    notes = load_weights(model, checkpoint, spec())
    expected = torch.load(FIXTURES / entry["output"], weights_only=True)["prediction"]
    with torch.no_grad():
        pred = model(x, entry["t_out"])
    assert pred.shape == expected.shape == (2, entry["t_out"], *task.shape)
    scale = max(1.0, float(expected.abs().max()))
    assert float((pred - expected).abs().max()) <= TOLERANCE * scale
    # the weights matter: another draw of the same model is far from the reference's output
    fresh = build(task, seed=123, **entry["settings"]).eval()
    with torch.no_grad():
        assert float((fresh(x, entry["t_out"]) - expected).abs().max()) > 1e-2
    assert notes["keys_loaded"] == len(model.state_dict())
    # what is dropped is only what the reference never uses: odd blocks' `red`, the D model's
    # Upsample.patch_embed and the two derived buffers
    dropped = [item["key"] for item in notes["dropped"]]
    for key in dropped:
        parts = key.split(".")
        assert (key.endswith((".relative_position_index", ".attn_mask")) or key.startswith("Upsample.patch_embed.")
                or ("red" in parts and int(parts[parts.index("red") - 1]) % 2 == 1)), key
    assert any(".red." in key for key in dropped)
    buffers = sum(item["parameters"] for item in notes["dropped"]
                  if item["key"].endswith((".relative_position_index", ".attn_mask")))
    assert count_params(model) + notes["dropped_parameters"] - buffers == entry["parameters"]


def test_fixtures_cover_both_references_both_variants_and_their_containers():
    entries = MANIFEST["models"]
    assert {(name.split("_")[0], e["settings"]["variant"]) for name, e in entries.items()} == {
        ("openstl", "D"), ("openstl", "B"), ("authors", "D"), ("authors", "B")}
    formats = {name: read_checkpoint(FIXTURES / e["file"]).format for name, e in entries.items()}
    assert formats == {"openstl_d": "openstl-lightning", "openstl_b": "openstl-pth", "authors_d": "openstl-pth",
                       "authors_b": "openstl-pth"}
    # the authors' files are bare state dicts in their own key layout (`Swin.layers`, `PatchInflated.ConvT`)
    authors = read_checkpoint(FIXTURES / entries["authors_d"]["file"]).state
    assert any(".Swin.layers." in key for key in authors) and "Upsample.Unembed.Conv.weight" in authors
    assert "ST.PatchInflated.ConvT.weight" in read_checkpoint(FIXTURES / entries["authors_b"]["file"]).state


@pytest.mark.parametrize("name", ["openstl_d", "openstl_b"])
def test_training_loss_is_openstls(name, clips):
    """OpenSTL's model loss (MSE of every next frame of the inference rollout) on the same weights and clips."""
    entry, task, x, y = fixture_case(name, clips)
    model = build(task, **entry["settings"]).eval()  # eval: stochastic depth off, as in the fixture
    load_weights(model, read_checkpoint(FIXTURES / entry["file"]), spec())
    expected = float(torch.load(FIXTURES / entry["output"], weights_only=True)["loss"])
    with torch.no_grad():
        assert float(model.loss(x, y, 0)) == pytest.approx(expected, rel=1e-6)
        assert expected == pytest.approx(entry["loss"], rel=1e-7)


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_stochastic_depth_schedule_is_the_references(name, clips):
    entry, task, _, _ = fixture_case(name, clips)
    model = build(task, **entry["settings"])
    own = model.state_dict()
    blocks = dict(model.named_modules())
    rates = {}
    for reference, rate in entry["drop_path"].items():
        block = rename_key(reference + ".norm1.weight", REFERENCE_KEYS, own)[:-len(".norm1.weight")]
        assert isinstance(blocks[block], SwinBlock)
        rates[block] = blocks[block].drop_path.p
        assert rates[block] == pytest.approx(rate, abs=1e-9), block
    assert len(rates) == sum(isinstance(m, SwinBlock) for m in blocks.values())


@pytest.mark.parametrize("variant", ["D", "B"])
def test_initialisation_follows_openstl(variant):
    """Mean and spread of every tensor of a fresh model match a fresh OpenSTL model of the same size."""
    case = INIT[variant]
    task = Task("mmnist", 4, 4, tuple(case["frame"]))
    model = build(task, **case["settings"])
    own = model.state_dict()
    matched = 0
    for key, ref in case["tensors"].items():
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in REFERENCE_UNUSED):
            continue
        ours = own[rename_key(key, REFERENCE_KEYS, own)].float()
        assert ours.numel() == ref["numel"], key
        if ref["numel"] > 1 and ref["std"] == 0:  # LayerNorm gains and biases: constants, exactly equal
            assert float(ours.std()) == 0 and float(ours.mean()) == ref["mean"], key
            continue
        if ref["numel"] < 64:  # too few values to say anything about their law
            continue
        # two draws of one law: their spreads and means differ by sampling noise only (~ 1 / sqrt(n))
        noise = ref["numel"] ** -0.5
        assert float(ours.std()) == pytest.approx(ref["std"], rel=max(0.1, 3 * noise)), key
        assert abs(float(ours.mean()) - ref["mean"]) <= 6 * noise * ref["std"] + 1e-7, key
        matched += 1
    assert matched >= 20


# ------------------------------------------------------------------------------------------ sizes

PAPER_TASKS = {"mmnist-10-10": Task("mmnist", 10, 10, (1, 64, 64)), "human-4-4": Task("human", 4, 4, (3, 256, 256))}


@pytest.mark.parametrize("task_name", sorted(PAPER_TASKS))
def test_paper_sizes_are_openstls(task_name):
    """OpenSTL's model zoo has no SwinLSTM row; OpenSTL's own model at the same config is the reference:
    its parameter count less what it never uses, and fvcore's count of its rollout less LayerNorm (which
    fvcore counts and stbench's MACs do not)."""
    task, ref = PAPER_TASKS[task_name], SIZES[task_name]
    with torch.device("meta"):
        model = spec().build(task, paper_hparams(task.dataset))
    assert count_params(model) + sum(ref["unused"].values()) == ref["parameters"]
    expected = (ref["fvcore_total"] - ref["fvcore_by_operator"]["layer_norm"]) * ref["steps"] // ref["steps_counted"]
    # every step of the rollout costs the same (test_whole_rollout_is_counted): count one, for speed
    macs = count_macs(model, Task(task.dataset, 1, 1, task.shape)) * ref["steps"]
    assert macs == pytest.approx(expected, rel=1e-6)
    assert macs == pytest.approx(ref["fvcore_total"] * ref["steps"] // ref["steps_counted"], rel=0.02)


def test_whole_rollout_is_counted():
    task = Task("mmnist", 10, 10, (1, 32, 32))
    model = build(task, embed_dim=8, depths_down=[2], depths_up=[2], num_heads=[2])
    one = count_macs(model, Task("mmnist", 1, 1, (1, 32, 32)))
    assert count_macs(model, task) == 19 * one


@pytest.mark.parametrize("dataset", ["mmnist", "human"])
def test_paper_profile_follows_openstl_configs(dataset):
    openstl = CONFIGS[dataset]
    ours = spec().settings_for("paper", dataset)
    assert ours["variant"] == openstl["method"].split("_")[1]
    for key in ("patch_size", "window_size", "embed_dim", "lr", "batch_size"):
        assert ours[key] == openstl[key], key
    assert ours["schedule"] == openstl["sched"]
    heads = [int(n) for n in str(openstl["num_heads"]).split(",")]
    assert ours["num_heads"] == heads
    if ours["variant"] == "D":
        assert ours["depths_down"] == [int(n) for n in openstl["depths_downsample"].split(",")]
        assert ours["depths_up"] == [int(n) for n in openstl["depths_upsample"].split(",")]
    else:
        assert ours["depths"] == [openstl["depths"]]
    # the modules' fixed defaults
    assert (ours["mlp_ratio"], ours["drop_path"]) == (4.0, 0.1)
    train, _, _ = resolve(spec(), plugins.get_dataset(dataset), "paper", {})
    assert (train["lr"], train["batch_size"], train["schedule"]) == (openstl["lr"], openstl["batch_size"], "onecycle")


# ----------------------------------------------------------------------------------------- behaviour

def smoke(t_in=3, t_out=4, shape=(1, 32, 32), **settings):
    _, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), "smoke", settings)
    torch.manual_seed(0)
    return spec().build(Task("mmnist", t_in, t_out, shape), hparams)


def test_predictions_feed_back_and_never_see_the_future():
    model = smoke().eval()
    x, y = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        long = model(x, 4)
        assert torch.equal(model(x, 2), long[:, :2])
        # training runs the same rollout: the loss is the MSE of frames 1..6 against the inference rollout
        rollout = model.rollout(x, 6)
        assert torch.equal(rollout[:, -4:], long)
        frames = torch.cat([x, y], dim=1)
        assert torch.allclose(model.loss(x, y, 0), F.mse_loss(rollout, frames[:, 1:]))
        # only the targets come from y
        assert torch.equal(model.rollout(x, 6), rollout)


def test_stochastic_depth_acts_in_training_only():
    model = smoke(drop_path=0.5)
    x, y = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 4, 1, 32, 32)
    model.train()
    torch.manual_seed(0)
    a = model.loss(x, y, 0)
    torch.manual_seed(1)
    assert not torch.allclose(a, model.loss(x, y, 0))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.loss(x, y, 0), model.loss(x, y, 0))


def test_a_grid_no_larger_than_the_window_is_one_unshifted_window():
    model = smoke(shape=(1, 16, 16), depths_down=[2], depths_up=[2], num_heads=[2])
    bottom = model.up[0].cell.blocks[1]  # an odd block on the 4x4 grid below the 8x8 patch grid
    assert bottom.grid == (4, 4) and bottom.window == 4 and bottom.shift == 0 and bottom.attn_mask is None
    top = model.down[0].cell.blocks[1]
    assert top.grid == (8, 8) and top.shift == 2 and top.attn_mask.shape == (4, 16, 16)


def test_shifted_windows_mask_the_wrapped_border():
    """Masked attention equals attention run separately on each region of the rolled grid."""
    torch.manual_seed(0)
    block = SwinBlock(4, (8, 8), heads=1, window=4, shift=2, mlp_ratio=2.0, drop_path=0.0, fuses=False).eval()
    mask = block.attn_mask  # [windows, 16, 16]
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    assert (mask[0] == 0).all()  # the first window is all from one region
    # a token never attends (unmasked) across regions; regions are symmetric
    assert torch.equal(mask, mask.transpose(1, 2))
    assert int((mask[-1] == 0).sum()) == 4 * 16  # the corner window holds 4 regions of 4 tokens


def test_variant_b_stacks_one_cell_per_depth():
    model = smoke(variant="B", depths=[3, 2], num_heads=[2, 4])
    assert [len(cell.blocks) for cell in model.cells] == [3, 2]
    assert [cell.blocks[0].attn.heads for cell in model.cells] == [2, 4]
    assert [b.fuse is not None for b in model.cells[0].blocks] == [True, False, True]
    assert {b.drop_path.p for cell in model.cells for b in cell.blocks} == {0.1}


@pytest.mark.parametrize("change, message", [
    (dict(patch_size=4), "patch_size must be 2"),
    (dict(variant="C"), "variant must be one of D, B"),
    (dict(depths_down=[2, 2], depths_up=[2]), "one entry per level"),
    (dict(depths_down=[1, 1, 1, 1, 1], depths_up=[1] * 5, num_heads=[2] * 5), "must divide by 32"),
    (dict(window_size=3), "does not split into 3x3 windows"),
    (dict(num_heads=[3]), "do not split into 3 heads"),
    (dict(depths_down=[0], depths_up=[2]), "positive integers"),
    (dict(variant="B", depths=[2], num_heads=[2, 2]), "one entry per cell"),
])
def test_bad_hyper_parameters_are_one_line_user_errors(change, message):
    with pytest.raises(UserError, match=message) as error:
        smoke(**change)
    assert "\n" not in str(error.value)


def test_openstl_style_comma_lists_are_accepted():
    model = smoke(depths_down="2", depths_up="2", num_heads="2")
    assert [len(s.cell.blocks) for s in (*model.down, *model.up)] == [2, 2]


def test_quick_profile_keeps_the_paper_structure():
    _, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), "quick", {})
    paper = paper_hparams()
    assert hparams["variant"] == "D" and len(hparams["depths_down"]) == len(paper["depths_down"])
    assert (hparams["patch_size"], hparams["window_size"], hparams["mlp_ratio"]) == (2, 4, 4.0)
    assert isinstance(build(PAPER_TASKS["mmnist-10-10"], **hparams), SwinLSTM)
