"""VMRNN: both scan forms equal mamba_ssm's reference scan; the authors' weights reproduce the authors' outputs;
sizes equal the authors' code; the rollout, the loss and the settings follow the reference."""
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
from stbench_vmrnn import REFERENCE_UNUSED, VMRNN, selective_scan

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
SIZES = json.loads((FIXTURES / "reference_sizes.json").read_text())
CONFIGS = json.loads((FIXTURES / "reference_configs.json").read_text())
TOLERANCE = 1e-5  # at the output's own scale
SHAPES = {"mmnist": (1, 64, 64), "taxibj": (2, 32, 32), "kth": (1, 128, 128)}


def spec():
    return plugins.get_model("vmrnn")


def task_of(name: str) -> Task:
    dataset, t_in, t_out = name.rsplit("-", 2)
    return Task(dataset, int(t_in), int(t_out), SHAPES[dataset])


def build(task, profile="paper", seed=0, **overrides):
    """The model as the run or `stbench eval --profile PROFILE --set ...` builds it for ``task``."""
    hparams = {k: v for k, v in spec().settings_for(profile, task.dataset).items() if k not in TRAIN_KEYS}
    hparams.update(overrides)
    torch.manual_seed(seed)
    return spec().build(task, hparams)


# ------------------------------------------------------------------------------------------- the scan

SCAN_CASES = torch.load(FIXTURES / "selective_scan_ref_cases.pt", weights_only=True)


@pytest.mark.parametrize("method, chunk", [("sequential", None), ("chunked", None), ("chunked", 1), ("chunked", 7),
                                           ("chunked", 10_000)])
@pytest.mark.parametrize("case", sorted(SCAN_CASES))
def test_scan_forms_equal_mamba_reference(case, method, chunk):
    c = SCAN_CASES[case]
    y = selective_scan(c["u"], c["delta"], c["A"], c["B"], c["C"], D=c["D"], z=c["z"], delta_bias=c["delta_bias"],
                       delta_softplus=c["delta_softplus"], method=method, chunk=chunk)
    assert y.shape == c["out"].shape and y.dtype == torch.float32
    scale = max(1.0, float(c["out"].abs().max()))
    assert float((y - c["out"]).abs().max()) <= TOLERANCE * scale


def test_scan_fixtures_cover_what_the_model_uses():
    used = SCAN_CASES["vmamba_cross_scan"]
    assert used["B"].dim() == 4 and used["delta_softplus"] and used["D"] is not None and used["z"] is None
    assert SCAN_CASES["with_z_gating"]["z"] is not None and SCAN_CASES["plain_one_group"]["B"].dim() == 3
    # the D skip, the softplus and z each change the result (the fixtures would catch their absence)
    c = SCAN_CASES["with_z_gating"]
    full = selective_scan(c["u"], c["delta"], c["A"], c["B"], c["C"], D=c["D"], z=c["z"], delta_bias=c["delta_bias"],
                          delta_softplus=True)
    for drop in ({"D": None}, {"z": None}, {"delta_softplus": False}, {"delta_bias": None}):
        args = dict(D=c["D"], z=c["z"], delta_bias=c["delta_bias"], delta_softplus=True)
        args.update(drop)
        assert not torch.allclose(selective_scan(c["u"], c["delta"], c["A"], c["B"], c["C"], **args), full, atol=1e-3)


def test_chunked_and_sequential_agree_in_value_and_gradient_at_model_length():
    generator = torch.Generator().manual_seed(3)
    dim, groups, state, length = 8, 4, 4, 1024  # a 32x32 grid: the paper's Moving MNIST first level
    u = torch.randn(2, dim, length, generator=generator, requires_grad=True)
    delta = torch.randn(2, dim, length, generator=generator, requires_grad=True)
    A = (-torch.rand(dim, state, generator=generator) * 4 - 0.5).requires_grad_()
    B, C = torch.randn(2, groups, state, length, generator=generator), torch.randn(2, groups, state, length, generator=generator)
    results = []
    for method in ("sequential", "chunked"):
        y = selective_scan(u, delta, A, B, C, D=torch.ones(dim), delta_bias=torch.zeros(dim), delta_softplus=True,
                           method=method)
        grads = torch.autograd.grad((y * torch.linspace(-1, 1, length)).sum(), (u, delta, A))
        results.append((y, grads))
    (y0, g0), (y1, g1) = results
    assert torch.allclose(y0, y1, atol=1e-5, rtol=1e-5)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_scan_rejects_what_it_does_not_implement():
    c = SCAN_CASES["plain_one_group"]
    with pytest.raises(ValueError, match="method must be one of"):
        selective_scan(c["u"], c["delta"], c["A"], c["B"], c["C"], method="parallel")
    with pytest.raises(ValueError, match="vary along the sequence"):
        selective_scan(c["u"], c["delta"], c["A"], c["B"][0, :, 0], c["C"])


# ---------------------------------------------------------------------------------------- fidelity

@pytest.mark.parametrize("scan", ["chunked", "sequential"])
@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_reference_weights_reproduce_reference_output(name, scan):
    entry = MANIFEST["models"][name]
    task = task_of(entry["task"])
    settings = dict(entry["settings"], scan=scan)
    model = build(task, **settings)
    notes = load_weights(model, read_checkpoint(FIXTURES / entry["file"]), spec())
    x = torch.load(FIXTURES / entry["input"], weights_only=True)["x_uint8"].float() / 255
    expected = torch.load(FIXTURES / entry["output"], weights_only=True)
    model.eval()
    with torch.no_grad():
        every = model.rollout(x, task.t_out)  # all T_in + T_out - 1 next-frame predictions, as the reference returns
        pred = model(x, task.t_out)
    assert every.shape == expected.shape == (2, task.t_in + task.t_out - 1, *task.shape)
    scale = max(1.0, float(expected.abs().max()))
    assert float((every - expected).abs().max()) <= TOLERANCE * scale
    assert torch.equal(pred, every[:, -task.t_out:])
    assert notes["keys_loaded"] == len(model.state_dict()) and notes["keys_renamed"] == notes["keys_loaded"]
    fresh = build(task, seed=123, **settings).eval()  # the weights matter
    with torch.no_grad():
        assert float((fresh.rollout(x, task.t_out) - expected).abs().max()) > 1e-2


def test_unused_reference_parameters_are_dropped_and_named():
    entry = MANIFEST["models"]["vmrnn_d_mmnist"]
    model = build(task_of(entry["task"]), **entry["settings"])
    notes = load_weights(model, read_checkpoint(FIXTURES / entry["file"]), spec())
    dropped = {item["key"] for item in notes["dropped"]}
    # the decoder's never-called patch embedding, and the hidden-state mixer of every block after a cell's first
    assert {k for k in dropped if k.startswith("Upsample.patch_embed.")} == {
        "Upsample.patch_embed.proj.weight", "Upsample.patch_embed.proj.bias",
        "Upsample.patch_embed.norm.weight", "Upsample.patch_embed.norm.bias"}
    assert {k for k in dropped if ".linear." in k} == {
        "Downsample.layers.1.VSBs.1.linear.weight", "Downsample.layers.1.VSBs.1.linear.bias",
        "Upsample.layers.1.VSBs.1.linear.weight", "Upsample.layers.1.VSBs.1.linear.bias"}
    assert notes["dropped_parameters"] + count_params(model) == entry["parameters"]
    assert REFERENCE_UNUSED == ("*VSBs.[1-9]*.linear.*", "Upsample.patch_embed.*")


def test_fixtures_cover_both_architectures_and_containers():
    entries = MANIFEST["models"].values()
    assert {e["settings"]["architecture"] for e in entries} == {"b", "d"}
    assert {e["settings"]["patch_size"] for e in entries} == {2, 4}  # 4: the inflation's GroupNorm stage
    files = [read_checkpoint(FIXTURES / e["file"]) for e in entries]
    assert {f.format for f in files} == {"openstl-pth"}
    raw = torch.load(FIXTURES / MANIFEST["models"]["vmrnn_b_taxibj"]["file"], weights_only=True)
    assert set(raw) == {"epoch", "optimizer", "state_dict", "scheduler"}  # the OpenSTL fork's latest checkpoint


# ------------------------------------------------------------------------------------------- sizes

def steps_macs(model, task):
    """Every rollout step costs the same: one counted step times T_in + T_out - 1 (the whole count takes minutes)."""
    return count_macs(model, Task(task.dataset, 1, 1, task.shape)) * (task.t_in + task.t_out - 1)


@pytest.mark.parametrize("task_name", ["mmnist-10-10", "taxibj-4-4", "kth-10-20"])
def test_paper_sizes_equal_the_reference_code(task_name):
    reference, task = SIZES[task_name], task_of(task_name)
    with torch.device("meta"):
        model = build(task)
    # the reference counts parameters it never uses; ours plus those are its count exactly
    assert count_params(model) + reference["unused_params"] == reference["params"]
    if "macs" in reference:
        ours = steps_macs(model, task)
        assert ours == pytest.approx(reference["macs"], rel=0.02)
        # and the difference is the LayerNorm / GroupNorm counts, which fvcore adds and torch's counter does not
        norms = sum(v for k, v in reference["macs_by_operator"].items() if k.endswith("norm"))
        assert ours == pytest.approx(reference["macs"] - norms, rel=1e-4)


# -------------------------------------------------------------------------------- settings and rollout

def test_paper_profile_follows_the_authors_configs():
    mm, script = CONFIGS["Moving_MNIST_VMRNN/configs.py"], CONFIGS["Moving_MNIST_VMRNN/scripts/mm/train_mm_mamba.sh"]
    ours = spec().settings_for("paper", "mmnist")
    assert (ours["architecture"], ours["depths"], ours["depths_up"]) == ("d", mm["depths_down"], mm["depths_up"])
    assert (ours["patch_size"], ours["embed_dim"], ours["drop_path"]) == (mm["patch_size"], mm["embed_dim"],
                                                                          mm["drop_path_rate"])
    assert (ours["lr"], ours["batch_size"], ours["epochs"]) == (float(script["lr"]), int(script["train_batch_size"]),
                                                              int(script["epochs"]))
    assert ours["train_samples"] == mm["train_samples"][1] - mm["train_samples"][0] and ours["schedule"] == "constant"
    assert ours["l1_weight"] == 1.0  # functions.py trains on MSE + L1
    for dataset, config, run in (("kth", "configs/kth/VMRNN-B.py", "scripts/kth/single/kth_mamba.sh"),
                                 ("taxibj", "configs/taxibj/VMRNN-B.py", "scripts/taxibj/single/taxibj_mamba_1gpu.sh")):
        ref, script, ours = CONFIGS[config], CONFIGS[run], spec().settings_for("paper", dataset)
        assert (ours["architecture"], ours["depths"], ours["depths_up"]) == ("b", [ref["depths"]], [])
        assert (ours["patch_size"], ours["embed_dim"], ours["drop_path"]) == (ref["patch_size"], ref["embed_dim"],
                                                                              ref["drop_path_rate"])
        assert ours["schedule"] == ref["sched"] and ours["l1_weight"] == 0.0  # OpenSTL's VMRNN models: MSE only
        assert (ours["lr"], ours["batch_size"], ours["epochs"]) == (float(script["lr"]), int(script["batch_size"]),
                                                                  int(script["epoch"]))


def test_rollout_feeds_back_predictions_and_the_loss_covers_every_step():
    task = Task("mmnist", 3, 4, (1, 32, 32))
    model = build(task, "smoke")
    model.eval()
    x, y = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        every = model.rollout(x, 4)
        assert torch.equal(model(x, 2), every[:, 2:4]) and torch.equal(model(x, 4), every[:, -4:])
        # step by step: inputs 0 .. T_in-2, then the last input, then each prediction
        frame, states, manual = None, None, []
        for t in range(2):
            frame, states = model.step(x[:, t], states)
            manual.append(frame)
        frame, states = model.step(x[:, 2], states)
        manual.append(frame)
        for _ in range(3):
            frame, states = model.step(frame, states)
            manual.append(frame)
        assert torch.allclose(torch.stack(manual, 1), every)
        targets = torch.cat([x[:, 1:], y], dim=1)
        expected = F.mse_loss(every, targets) + F.l1_loss(every, targets)
        assert torch.allclose(model.loss(x, y, 0), expected)
        # the future targets never enter the rollout: other targets change the loss only through the comparison
        other = torch.rand(2, 4, 1, 32, 32)
        other_targets = torch.cat([x[:, 1:], other], dim=1)
        assert torch.allclose(model.loss(x, other, 0), F.mse_loss(every, other_targets) + F.l1_loss(every, other_targets))


def test_architecture_b_stacks_cells_on_the_patch_grid_and_d_is_u_shaped():
    task = Task("mmnist", 2, 2, (1, 32, 32))
    b = build(task, "smoke", architecture="b", depths=[2, 1], depths_up=[])
    assert [len(c.blocks) for c in b.cells] == [2, 1] and {c.grid for c in b.cells} == {(16, 16)}
    assert not b.merges and not b.expands
    d = build(task, "smoke", architecture="d", depths=[1, 2], depths_up=[3, 1], embed_dim=8)
    assert [(c.channels, c.grid, len(c.blocks)) for c in d.cells] == [
        (8, (16, 16), 1), (16, (8, 8), 2), (32, (4, 4), 1), (16, (8, 8), 3)]
    # only a cell's first block mixes in the hidden state
    assert all((block.mix_hidden is not None) == (i == 0) for c in d.cells for i, block in enumerate(c.blocks))
    # rectangular frames work (the reference asserts square ones)
    wide = build(Task("weather", 2, 2, (1, 32, 64)), "smoke").eval()
    with torch.no_grad():
        assert wide(torch.rand(1, 2, 1, 32, 64), 2).shape == (1, 2, 1, 32, 64)


def test_output_is_a_sigmoid_unless_the_data_is_unbounded():
    assert spec().settings_for("paper", "weather")["output"] == "linear"
    assert spec().settings_for("quick", "mmnist")["output"] == "sigmoid"
    task = Task("mmnist", 2, 2, (1, 32, 32))
    with torch.no_grad():
        out = build(task, "smoke").eval()(torch.rand(1, 2, 1, 32, 32), 2)
    assert out.min() >= 0 and out.max() <= 1


def test_quick_profile_resolves_for_mmnist():
    train, hparams, _ = resolve(spec(), plugins.get_dataset("mmnist"), "quick", {})
    model = spec().build(plugins.resolve_task("mmnist-10-10"), hparams)
    assert isinstance(model, VMRNN) and train["batch_size"] == 16


@pytest.mark.parametrize("change, message", [
    (dict(architecture="c"), "architecture must be one of b, d"),
    (dict(depths_up=[1]), "one depths_up entry per depths entry"),
    (dict(architecture="b", depths_up=[1, 1]), "no decoder cells"),
    (dict(depths=[]), "at least one cell"),
    (dict(depths=[0, 1]), "positive block counts"),
    (dict(scan="parallel"), "scan must be one of sequential, chunked"),
    (dict(output="tanh"), "output must be one of sigmoid, linear"),
    (dict(patch_size=3), "power of 2"),
    (dict(patch_size=1), "power of 2"),
    (dict(patch_size=4, embed_dim=8), "divisible by 16"),
    (dict(patch_size=16), "divisible by"),
    (dict(drop_path=1.0), "drop_path and dropout"),
])
def test_bad_hyper_parameters_are_one_line_user_errors(change, message):
    with pytest.raises(UserError, match=message) as error:
        build(Task("mmnist", 2, 2, (1, 32, 32)), "smoke", **change)
    assert "\n" not in str(error.value)
