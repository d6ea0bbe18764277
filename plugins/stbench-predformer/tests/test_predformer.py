"""PredFormer: the authors' weights and outputs for every variant, their initialisation and position code, the
published sizes of every variant on the four datasets, the rollout and the user errors."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import stbench_predformer
from stbench import Task, UserError
from stbench.checkpoints import load_weights, read_checkpoint, rename_key
from stbench.config import TRAIN_KEYS, resolve
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_predformer import VARIANTS, stage_names
from stbench_predformer.model import PredFormerModel, along, drop_path, sinusoidal_positions

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = MANIFEST["cases"]
TOLERANCE = 1e-5


def registered():
    specs = {}
    stbench_predformer.stbench_register_models(register=lambda spec: specs.setdefault(spec.name, spec))
    return specs["predformer"]


SPEC = registered()


def from_reference_config(variant, cfg, layer_skip=False):
    """stbench's model for one of the authors' model_config dicts (Ndepth -> ndepth)."""
    task = Task("toy", cfg["pre_seq"], cfg["after_seq"], (cfg["num_channels"], cfg["height"], cfg["width"]))
    hparams = {k: cfg[k] for k in ("patch_size", "dim", "heads", "dim_head", "scale_dim", "depth", "dropout",
                                   "attn_dropout", "drop_path")}
    return SPEC.build(task, dict(hparams, variant=variant, ndepth=cfg["Ndepth"], layer_skip=layer_skip))


def case_model(name):
    case = CASES[name]
    return from_reference_config(case["variant"], case["model_config"], layer_skip=case["patched"])


@pytest.fixture(scope="module")
def outputs():
    return torch.load(FIXTURES / "outputs.pt", weights_only=True)


# ---------------------------------------------------------------------------------------------- fidelity

@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_checkpoint_reproduces_the_reference_output(name, outputs):
    """Each fixture: the authors' model file at reduced width, its checkpoint container, its eval-mode output
    for 6 frames (one call of 4, then 2 frames of a call fed with the first), from the same clips."""
    model = case_model(name)
    checkpoint = read_checkpoint(FIXTURES / f"{name}.pth")
    notes = load_weights(model, checkpoint, SPEC)  # the loader `stbench eval --checkpoint` uses
    assert notes["format"] == "openstl-pth" and notes["dropped"] == []
    assert notes["keys_loaded"] == CASES[name]["keys"] == len(model.state_dict())
    assert checkpoint.epoch == (1 if CASES[name]["container"] == "latest" else None)
    assert count_params(model) == CASES[name]["parameters"]
    model.eval()
    x, expected = outputs["x"], outputs[name]
    scale = max(1.0, float(expected.abs().max()))
    with torch.no_grad():
        assert float((model(x, 6) - expected).abs().max()) <= TOLERANCE * scale
        assert float((model(x, 4) - expected[:, :4]).abs().max()) <= TOLERANCE * scale
        assert float((model(x, 3) - expected[:, :3]).abs().max()) <= TOLERANCE * scale
    # another draw of the same model is far from the reference's output
    torch.manual_seed(123)
    with torch.no_grad():
        assert float((case_model(name).eval()(x, 6) - expected).abs().max()) > 1e-2


def test_the_reference_facst_head_reads_tokens_patch_major(outputs):
    """The authors' FacST hands the temporal transformer's (clip, patch, frame) tokens to the head unpermuted;
    reading them in (clip, frame, patch) order instead gives another output (so the fixture pins the quirk)."""
    model = case_model("FacST")
    load_weights(model, read_checkpoint(FIXTURES / "FacST.pth"), SPEC)
    model.eval()
    assert model.patch_major_head and not case_model("FacTS").patch_major_head
    model.patch_major_head = False
    with torch.no_grad():
        assert float((model(outputs["x"], 6) - outputs["FacST"]).abs().max()) > 1e-2


def test_the_layer_skip_changes_the_output(outputs):
    model = case_model("TST")
    load_weights(model, read_checkpoint(FIXTURES / "TST_skip.pth"), SPEC)  # the skip fixture's weights, no skip
    with torch.no_grad():
        assert float((model.eval()(outputs["x"], 6) - outputs["TST_skip"]).abs().max()) > 1e-2


@pytest.mark.parametrize("name, variant", [("TSST", "TST"), ("BinaryTS", "BinaryST"), ("FacST", "TSST"),
                                           ("TSST_depth2", "TSST")])
def test_a_checkpoint_of_another_variant_or_size_is_refused(name, variant):
    cfg = CASES[name]["model_config"]
    with pytest.raises(UserError, match="does not fit predformer"):
        load_weights(from_reference_config(variant, dict(cfg, depth=1, Ndepth=2)),
                     read_checkpoint(FIXTURES / f"{name}.pth"), SPEC)


def test_every_reference_name_of_every_variant_has_one_home():
    """Rename rules from the reference's keys for every variant: each key maps to a key of the model built for
    that variant, and no two keys to the same one."""
    for name in ("FullAttention", "FacST", "FacTS", "BinaryST", "BinaryTS", "TST", "STS", "TSST", "STTS"):
        theirs = read_checkpoint(FIXTURES / f"{name}.pth").state
        own = case_model(name).state_dict()
        mapped = {rename_key(key, SPEC.checkpoint_rename, own) for key in theirs}
        assert mapped == set(own), name


def test_initialisation_follows_the_reference():
    """Mean / std of every tensor of a fresh model against the authors' fresh models (TSST and FacTS)."""
    recorded = json.loads((FIXTURES / "init_statistics.json").read_text())
    for variant in ("TSST", "FacTS"):
        torch.manual_seed(0)
        model = from_reference_config(variant, recorded[variant]["model_config"])
        own, compared = model.state_dict(), set()
        for key, ref in recorded[variant]["tensors"].items():
            mine = rename_key(key, SPEC.checkpoint_rename, own)
            ours = own[mine].double()
            compared.add(mine)
            assert ours.numel() == ref["numel"], key
            if ref["std"] == 0:  # zero biases, LayerNorm ones and zeros
                assert float(ours.std()) == 0 and float(ours.mean()) == pytest.approx(ref["mean"], abs=1e-12), key
                continue
            assert float(ours.std()) == pytest.approx(ref["std"], rel=0.1), key
            assert abs(float(ours.mean()) - ref["mean"]) <= 6 * ref["std"] / ref["numel"] ** 0.5, key
        assert compared == set(own)
        # transformer weights start at std 0.02; the patch embedding keeps PyTorch's default (uniform, 1/sqrt(fan-in))
        qkv = model.layers[0].stages[stage_names(variant)[0]].blocks[0].attn.qkv.weight.detach()
        assert float(qkv.std()) == pytest.approx(0.02, rel=0.05)
        assert float(model.patch_embed.weight.detach().abs().max()) <= model.patch_embed.in_features ** -0.5
        pos = recorded[variant]["pos_embedding"]
        assert list(model.pos_embed.shape) == pos["shape"]
        assert float(model.pos_embed.double().sum()) == pytest.approx(pos["sum"], rel=1e-9)


def test_position_code_at_the_moving_mnist_size_is_the_reference_one():
    recorded = json.loads((FIXTURES / "init_statistics.json").read_text())["pos_embedding_mmnist"]
    pos = sinusoidal_positions(10 * 64, 256)
    assert [1, *pos.view(10, 64, 256).shape] == recorded["shape"]
    for row, values in recorded["rows"].items():
        assert torch.equal(pos[int(row)], torch.tensor(values, dtype=torch.float32)), row
    assert float(pos.double().sum()) == pytest.approx(recorded["sum"], rel=1e-12)
    assert float(pos.double().abs().sum()) == pytest.approx(recorded["abs_sum"], rel=1e-12)
    # not a parameter, and not saved: the reference's state dicts carry no position code
    model = SPEC.build(Task("mmnist", 10, 10, (1, 64, 64)), smoke_hparams())
    assert "pos_embed" not in model.state_dict() and all("pos" not in n for n, _ in model.named_parameters())


# ---------------------------------------------------------------------------------------- published size

# PredFormer README at yyyujintang/PredFormer b73c7ae (figures/exp1.png, exp2.png: the paper's Tables 2-5):
# Params (M) / FLOPs (G) of every variant, with the layer count each was built with (configs' comments and
# Table 1: GTB blocks 24 / 12 / {6, 8} / {6, 8}); human's Triplet rows are the skip-connection models (*).
TASKS = {"mmnist": Task("mmnist", 10, 10, (1, 64, 64)), "human": Task("human", 4, 4, (3, 256, 256)),
         "taxibj": Task("taxibj", 4, 4, (2, 32, 32)), "weather": Task("weather", 12, 12, (1, 32, 64))}
NDEPTH = {  # FullAttention, Fac*, Binary*, triplets, quadruplets
    "mmnist": (24, 12, 12, 8, 6), "human": (12, 6, 6, 4, 3), "taxibj": (8, 4, 4, 2, 2), "weather": (8, 4, 4, 2, 2)}
PUBLISHED = {
    "mmnist": {"FullAttention": (25.3, 21.2), "FacST": (25.3, 16.5), "FacTS": (25.3, 16.5), "BinaryTS": (25.3, 16.5),
               "BinaryST": (25.3, 16.5), "TST": (25.3, 16.4), "STS": (25.3, 16.5), "TSST": (25.3, 16.5),
               "STTS": (25.3, 16.4)},
    "human": {"FullAttention": (12.7, 155.0), "FacST": (12.7, 65.0), "FacTS": (12.7, 65.0), "BinaryTS": (12.7, 65.0),
              "BinaryST": (12.7, 65.0), "TST": (12.7, 60.8), "STS": (12.7, 69.3), "TSST": (12.7, 65.0),
              "STTS": (12.7, 65.0)},
    "taxibj": {"FullAttention": (8.4, 2.4), "FacST": (8.4, 2.2), "FacTS": (8.4, 2.2), "BinaryTS": (8.4, 2.2),
               "BinaryST": (8.4, 2.2), "TST": (6.3, 1.6), "STS": (6.3, 1.6), "TSST": (8.4, 2.2), "STTS": (8.4, 2.2)},
    "weather": {"FullAttention": (5.3, 17.8), "FacST": (5.3, 8.5), "FacTS": (5.3, 8.5), "BinaryTS": (5.3, 8.6),
                "BinaryST": (5.3, 8.6), "TST": (4.0, 6.3), "STS": (4.0, 6.5), "TSST": (5.3, 8.6), "STTS": (5.3, 8.6)},
}
ROWS = [(ds, v, *PUBLISHED[ds][v]) for ds in PUBLISHED for v in PUBLISHED[ds]]


def published_ndepth(dataset, variant):
    full, fac, binary, triplet, quadruplet = NDEPTH[dataset]
    return {"FullAttention": full, "FacST": fac, "FacTS": fac, "BinaryST": binary, "BinaryTS": binary,
            "TST": triplet, "STS": triplet, "TSST": quadruplet, "STTS": quadruplet}[variant]


def paper_hparams(dataset, **overrides):
    hparams = {k: v for k, v in SPEC.settings_for("paper", dataset).items() if k not in TRAIN_KEYS}
    return {**hparams, **overrides}


def close_to_printed(ours, printed, rel=0.02):
    """Within 2%, or equal at the printed precision (one decimal: 1.649 G is printed 1.6)."""
    return abs(ours - printed) <= rel * printed or round(ours, 1) == printed


@pytest.mark.parametrize("dataset, variant, params_m, gmacs", ROWS, ids=[f"{d}-{v}" for d, v, *_ in ROWS])
def test_every_variant_matches_the_published_params_and_flops(dataset, variant, params_m, gmacs):
    task = TASKS[dataset]
    hparams = paper_hparams(dataset, variant=variant, ndepth=published_ndepth(dataset, variant),
                            layer_skip=dataset == "human" and variant in ("TST", "STS"))
    with torch.device("meta"):
        model = SPEC.build(task, hparams)
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert close_to_printed(count_macs(model, task) / 1e9, gmacs)


def test_paper_configs_are_the_shipped_variants_at_the_published_size():
    """The paper profile's model per dataset is the one the authors ship a training script for."""
    expected = {"mmnist": ("TSST", 6, 25.30, 16.42), "human": ("TSST", 3, 12.73, 64.88),
                "taxibj": ("STS", 2, 6.33, 1.65), "weather": ("FacTS", 4, 5.27, 8.51)}
    for dataset, (variant, ndepth, params_m, gmacs) in expected.items():
        hparams = paper_hparams(dataset)
        assert (hparams["variant"], hparams["ndepth"]) == (variant, ndepth)
        with torch.device("meta"):
            model = SPEC.build(TASKS[dataset], hparams)
        assert count_params(model) / 1e6 == pytest.approx(params_m, abs=0.005)
        assert count_macs(model, TASKS[dataset]) / 1e9 == pytest.approx(gmacs, abs=0.005)


def test_flops_count_the_whole_rollout():
    task = Task("mmnist", 10, 20, (1, 64, 64))
    with torch.device("meta"):
        model = SPEC.build(task, paper_hparams("mmnist"))
    assert count_macs(model, task) == 2 * count_macs(model, TASKS["mmnist"])


# -------------------------------------------------------------------------------------------- behaviour

def smoke_hparams(**overrides):
    return {**{k: v for k, v in SPEC.settings_for("smoke", "mmnist").items() if k not in TRAIN_KEYS}, **overrides}


def smoke(variant="TSST", t_in=4, t_out=4, shape=(2, 16, 24), seed=0, **overrides):
    torch.manual_seed(seed)
    return SPEC.build(Task("toy", t_in, t_out, shape), smoke_hparams(variant=variant, patch_size=8, **overrides))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_extended_and_reduced_horizons_chain_calls(variant):
    model = smoke(variant).eval()
    x = torch.rand(2, 4, 2, 16, 24)
    with torch.no_grad():
        first = model(x, 4)
        second = model(first, 4)
        third = model(second, 4)
        assert torch.equal(model(x, 11), torch.cat([first, second, third[:, :3]], dim=1))
        assert torch.equal(model(x, 2), first[:, :2])
        assert model(x, 1).shape == (2, 1, 2, 16, 24)


def test_axes_mix_what_they_should():
    """A temporal stage mixes the frames of one patch position only; a spatial one the patches of one frame."""
    def running(seq):  # stands for a transformer: a running sum over the sequence shows what is mixed
        return seq.cumsum(dim=1)

    x = torch.zeros(1, 3, 5, 1)
    x[0, 0, 2, 0] = 1.0  # frame 0, patch 2
    t = along(x, "t", running)
    assert t[0, :, 2, 0].tolist() == [1, 1, 1] and float(t.sum()) == 3
    s = along(x, "s", running)
    assert s[0, 0, :, 0].tolist() == [0, 0, 1, 1, 1] and float(s.sum()) == 3
    st = along(x, "st", running)  # tokens in (frame, patch) order
    assert float(st.sum()) == 3 * 5 - 2


def test_drop_path_drops_whole_sequences_and_only_in_training():
    x = torch.ones(4000, 3, 2)
    torch.manual_seed(0)
    y = drop_path(x, 0.25, training=True)
    per_row = y.view(4000, -1)
    assert set(per_row.unique().tolist()) <= {0.0, float(torch.tensor(1 / 0.75))}
    assert bool((per_row == per_row[:, :1]).all())  # a row is kept or dropped whole
    assert float((per_row[:, 0] == 0).float().mean()) == pytest.approx(0.25, abs=0.03)
    assert drop_path(x, 0.25, training=False) is x


def test_training_mode_regularises_and_eval_mode_does_not():
    model = smoke(dropout=0.3, attn_dropout=0.3, drop_path=0.3)
    x = torch.rand(2, 4, 2, 16, 24)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x, 4), model(x, 4))
        model.eval()
        assert torch.equal(model(x, 4), model(x, 4))


def test_layered_and_single_layer_structures():
    layered = smoke("STTS", ndepth=3, depth=2)
    assert len(layered.layers) == 3 and list(layered.layers[0].stages) == ["s0", "t1", "t2", "s3"]
    assert all(len(stage.blocks) == 2 for layer in layered.layers for stage in layer.stages.values())
    fac = smoke("FacTS", ndepth=3)
    assert len(fac.layers) == 1 and [len(s.blocks) for s in fac.layers[0].stages.values()] == [3, 3]
    full = smoke("FullAttention", ndepth=2)
    assert list(full.layers[0].stages) == ["st0"] and full.layers[0].axes == ("st",)


def test_user_errors_say_what_to_change():
    with pytest.raises(UserError, match=r"did you mean [^?]*TSST"):
        smoke("TSTS")
    with pytest.raises(UserError, match="patch_size 8 must divide"):
        SPEC.build(Task("toy", 2, 2, (1, 20, 24)), smoke_hparams())
    with pytest.raises(UserError, match="depth .* applies to the layered"):
        smoke("FacST", depth=2)
    with pytest.raises(UserError, match="layer_skip"):
        smoke("TSST", layer_skip=True)
    with pytest.raises(UserError, match="drop_path"):
        smoke(drop_path=1.0)
    with pytest.raises(UserError, match="ndepth"):
        smoke(ndepth=0)
    with pytest.raises(ValueError, match="Ndepth"):
        SPEC.build(Task("toy", 2, 2, (1, 16, 16)), dict(smoke_hparams(), Ndepth=2))
    with pytest.raises(ValueError, match=r"built for clips \[B, 4"):
        smoke()(torch.rand(1, 3, 2, 16, 24), 4)


def test_declared_profiles_resolve():
    from stbench import plugins

    for name in ("mmnist", "human", "taxibj", "weather"):
        dataset = plugins.get_dataset(name)
        for profile in ("paper", "quick", "smoke"):
            _, hparams, _ = resolve(SPEC, dataset, profile, {})
            assert set(hparams) == set(stbench_predformer.ARCH_KEYS)
    expected = {  # scripts/<dataset>/*_train.sh: optimiser, lr, schedule, epochs, batch
        "mmnist": ("adamw", 1e-3, 1e-2, "onecycle", 2000, 16), "human": ("adamw", 1e-3, 1e-2, "cosine", 50, 8),
        "taxibj": ("adamw", 1e-3, 1e-2, "onecycle", 200, 16), "weather": ("adamw", 5e-4, 1e-2, "cosine", 50, 16)}
    for name, values in expected.items():
        train, hparams, _ = resolve(SPEC, plugins.get_dataset(name), "paper", {})
        assert (train["optimizer"], train["lr"], train["weight_decay"], train["schedule"], train["epochs"],
                train["batch_size"]) == values
    drops = {name: paper_hparams(name) for name in expected}
    assert (drops["mmnist"]["dropout"], drops["mmnist"]["drop_path"]) == (0.0, 0.0)
    assert (drops["weather"]["scale_dim"], drops["weather"]["drop_path"], drops["weather"]["patch_size"]) == (2, 0.25, 4)
    assert isinstance(smoke(), PredFormerModel)
