"""UniSTD: RA-MoE ranks, temporal attention, checkpoint loading, single/joint shapes, training, paper numbers."""
import pytest
import torch

import stbench_unistd
from stbench import Task, UserError
from stbench.config import TRAIN_KEYS
from stbench.profiling import count_macs
from stbench_unistd import Backbone, RankAdaptiveMoE, build_unistd


def registered():
    specs = {}
    stbench_unistd.stbench_register_models(register=lambda spec: specs.setdefault(spec.name, spec))
    return specs["unistd"]


SPEC = registered()


def settings(profile, dataset, **over):
    merged = SPEC.settings_for(profile, dataset)
    return {**{k: v for k, v in merged.items() if k not in TRAIN_KEYS}, **over}


MMNIST = Task("mmnist", 10, 10, (1, 64, 64))
TAXIBJ = Task("taxibj", 4, 4, (2, 32, 32))


# ---------------------------------------------------------------- RA-MoE

def integer_lora(moe, x, ranks):
    """The plain rank-r LoRA mixture: sum_i G_i(x) x A_i[:, :r_i] B_i[:r_i]."""
    gate = torch.softmax(moe.router(x), dim=-1)
    out = 0
    for i, r in enumerate(ranks):
        out = out + gate[..., i:i + 1] * (x @ moe.lora_A[:, i, :r] @ moe.lora_B[i, :r])
    return moe.alpha * out


def fresh_moe(passes, experts=3, max_rank=6, grad_scale=1.0):
    torch.manual_seed(0)
    moe = RankAdaptiveMoE(12, 12, experts, max_rank, init_rank=2.5, alpha=0.7, rank_grad_scale=grad_scale,
                          passes=passes)
    with torch.no_grad():
        moe.lora_B.normal_()  # B starts at zero; make the experts do something
    return moe


@pytest.mark.parametrize("passes", ["two", "one"])
def test_continuous_rank_at_an_integer_equals_the_integer_rank_adapter(passes):
    moe, x = fresh_moe(passes), torch.randn(2, 5, 12)
    ranks = [1, 3, 6]
    with torch.no_grad():
        moe.rank.copy_(torch.tensor(ranks, dtype=torch.float32))
        assert torch.allclose(moe(x), integer_lora(moe, x, ranks), atol=1e-5)


@pytest.mark.parametrize("passes", ["two", "one"])
def test_fractional_rank_interpolates_and_its_gradient_is_the_neighbour_difference(passes):
    gamma = 2.0
    moe, x = fresh_moe(passes, experts=1, grad_scale=gamma), torch.randn(4, 12)
    with torch.no_grad():
        moe.rank.fill_(3.25)
    low, high = integer_lora(moe, x, [3]), integer_lora(moe, x, [4])
    out = moe(x)
    assert torch.allclose(out, 0.75 * low + 0.25 * high, atol=1e-5)
    out.sum().backward()  # Eq. 9: d f / d r = gamma * (g_ceil - g_floor)
    assert torch.allclose(moe.rank.grad, gamma * (high - low).sum().reshape(1), rtol=1e-4, atol=1e-5)


def test_one_pass_and_two_pass_agree_in_value_and_gradient():
    x = torch.randn(3, 7, 12)
    results = []
    for passes in ("two", "one"):
        moe = fresh_moe(passes)
        with torch.no_grad():
            moe.rank.copy_(torch.tensor([1.3, 4.0, 5.9]))
        out = moe(x)
        out.square().sum().backward()
        results.append((out.detach(), moe.rank.grad.clone(), moe.lora_A.grad.clone()))
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_rounding_freezes_ranks_and_a_fresh_adapter_adds_nothing():
    moe = RankAdaptiveMoE(8, 8, 2, 8, init_rank=4.5)
    assert torch.count_nonzero(moe(torch.randn(3, 8))) == 0
    with torch.no_grad():
        moe.rank.copy_(torch.tensor([2.6, 9.5]))
    moe.round_ranks()
    assert moe.rank.tolist() == [3.0, 8.0] and not moe.rank.requires_grad


# ---------------------------------------------------------------- temporal attention

def test_zero_initialised_temporal_attention_leaves_the_backbone_output_unchanged():
    torch.manual_seed(0)
    kwargs = dict(dim=32, depth=2, heads=4, mlp_ratio=2.0, qkv_experts=2, proj_experts=1, temporal_experts=2,
                  max_rank=4, init_rank=2.5)
    with_temporal, without = Backbone(temporal=True, **kwargs), Backbone(temporal=False, **kwargs)
    with torch.no_grad():
        for module in (with_temporal, without):
            for name, param in module.named_parameters():
                if "lora_B" in name and "temporal" not in name:
                    param.normal_()  # live attention adapters, so only the temporal module is at its start
    missing = without.load_state_dict(with_temporal.state_dict(), strict=False)
    assert not missing.missing_keys and all(".temporal." in key for key in missing.unexpected_keys)
    tokens = torch.randn(2, 9, 32)
    assert torch.allclose(with_temporal(tokens), without(tokens), atol=1e-5)
    with torch.no_grad():  # once trained, the module does change the output
        with_temporal.blocks[0].temporal.fc2.weight.normal_()
    assert not torch.allclose(with_temporal(tokens), without(tokens), atol=1e-3)


# ---------------------------------------------------------------- pretrained checkpoints

WIDTH, DEPTH = 768, 2  # ViT-B/16 tensor shapes, two blocks to keep the files small


def timm_state(generator):
    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.02

    state = {"cls_token": rand(1, 1, WIDTH), "pos_embed": rand(1, 197, WIDTH),
             "patch_embed.proj.weight": rand(WIDTH, 3, 16, 16), "patch_embed.proj.bias": rand(WIDTH),
             "norm.weight": 1 + rand(WIDTH), "norm.bias": rand(WIDTH),
             "head.weight": rand(1000, WIDTH), "head.bias": rand(1000)}
    for i in range(DEPTH):
        p = f"blocks.{i}."
        state.update({p + "norm1.weight": 1 + rand(WIDTH), p + "norm1.bias": rand(WIDTH),
                      p + "attn.qkv.weight": rand(3 * WIDTH, WIDTH), p + "attn.qkv.bias": rand(3 * WIDTH),
                      p + "attn.proj.weight": rand(WIDTH, WIDTH), p + "attn.proj.bias": rand(WIDTH),
                      p + "norm2.weight": 1 + rand(WIDTH), p + "norm2.bias": rand(WIDTH),
                      p + "mlp.fc1.weight": rand(4 * WIDTH, WIDTH), p + "mlp.fc1.bias": rand(4 * WIDTH),
                      p + "mlp.fc2.weight": rand(WIDTH, 4 * WIDTH), p + "mlp.fc2.bias": rand(WIDTH)})
    return state


TO_OPEN_CLIP = {"norm1": "ln_1", "attn.qkv.weight": "attn.in_proj_weight", "attn.qkv.bias": "attn.in_proj_bias",
                "attn.proj": "attn.out_proj", "norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def open_clip_state(timm):
    state = {"visual.class_embedding": timm["cls_token"][0, 0], "visual.positional_embedding": timm["pos_embed"][0],
             "visual.conv1.weight": timm["patch_embed.proj.weight"], "visual.proj": timm["head.weight"][:512].T,
             "visual.ln_pre.weight": 1 + timm["norm.bias"], "visual.ln_pre.bias": timm["norm.bias"] * 2,
             "visual.ln_post.weight": timm["norm.weight"], "visual.ln_post.bias": timm["norm.bias"],
             # the text tower uses the same block names without "visual."; it must be left alone
             "transformer.resblocks.0.attn.in_proj_weight": torch.zeros(3 * 512, 512),
             "logit_scale": torch.tensor(4.6)}
    for key, value in timm.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            for ours, theirs in TO_OPEN_CLIP.items():
                if rest.startswith(ours):
                    rest = theirs + rest[len(ours):]
                    break
            state[f"visual.transformer.resblocks.{index}.{rest}"] = value
    return state


def checkpoint_model(path, **over):
    hp = settings("smoke", "mmnist", embed_dim=WIDTH, depth=DEPTH, heads=12, mlp_ratio=4.0, pretrained=str(path),
                  **over)
    return build_unistd(MMNIST, hp)


def test_a_timm_checkpoint_loads_into_the_frozen_backbone(tmp_path):
    state = timm_state(torch.Generator().manual_seed(0))
    path = tmp_path / "vit_base_patch16_224.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = checkpoint_model(path)
    own = dict(model.backbone.named_parameters())
    for key in ("blocks.1.attn.qkv.weight", "blocks.0.mlp.fc2.bias", "blocks.1.norm2.weight", "norm.bias"):
        assert torch.equal(own[key], state[key]) and not own[key].requires_grad
    assert own["blocks.0.attn.lora_q.lora_A"].requires_grad and own["blocks.0.temporal.fc1.weight"].requires_grad
    assert "timm key names" in model.record_notes()["backbone"]
    assert model(torch.rand(1, 10, 1, 64, 64), 10).shape == (1, 10, 1, 64, 64)


def test_an_open_clip_checkpoint_loads_the_visual_tower(tmp_path):
    timm = timm_state(torch.Generator().manual_seed(1))
    state = open_clip_state(timm)
    path = tmp_path / "open_clip_vit_b_16.bin"
    torch.save(state, path)
    model = checkpoint_model(path, mlp_act="quick_gelu")
    own = dict(model.backbone.named_parameters())
    assert torch.equal(own["blocks.1.attn.qkv.weight"], timm["blocks.1.attn.qkv.weight"])
    assert torch.equal(own["blocks.0.attn.proj.weight"], timm["blocks.0.attn.proj.weight"])
    assert torch.equal(own["blocks.1.mlp.fc1.bias"], timm["blocks.1.mlp.fc1.bias"])
    assert torch.equal(own["norm_pre.weight"], state["visual.ln_pre.weight"])
    assert torch.equal(own["norm.weight"], state["visual.ln_post.weight"])
    assert not own["norm_pre.weight"].requires_grad and "open_clip" in model.record_notes()["backbone"]


def test_checkpoint_errors_are_one_clear_line(tmp_path):
    path = tmp_path / "vit.pth"
    torch.save(timm_state(torch.Generator().manual_seed(0)), path)
    with pytest.raises(UserError, match="depth=2"):
        build_unistd(MMNIST, settings("smoke", "mmnist", embed_dim=WIDTH, depth=3, heads=12, pretrained=str(path)))
    with pytest.raises(UserError, match="does not exist"):
        checkpoint_model(tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="neither timm"):
        checkpoint_model(tmp_path / "other.pth")


def test_without_a_checkpoint_the_record_says_random_init():
    model = build_unistd(MMNIST, settings("smoke", "mmnist"))
    assert model.record_notes()["backbone"].startswith("random init")
    assert model.record_notes()["trainable_params"] == model.trainable_params()
    assert all(not p.requires_grad for p in model.backbone.frozen_parameters())


# ---------------------------------------------------------------- shapes and the joint contract


def test_extended_rollout_feeds_chunks_of_t_in_back():
    task = Task("toy", 3, 7, (1, 16, 16))
    model = build_unistd(task, settings("smoke", "toy")).eval()
    x = torch.rand(1, 3, 1, 16, 16)
    with torch.no_grad():
        first = model.step(x)
        second = model.step(first)
        third = model.step(second)
        assert torch.allclose(model(x, 7), torch.cat([first, second, third[:, :1]], dim=1), atol=1e-6)


def test_odd_frame_sizes_come_back_at_their_size():
    task = Task("odd", 2, 2, (3, 23, 37))
    model = build_unistd(task, settings("smoke", "odd", enc_blocks=3))
    assert model(torch.rand(1, 2, 3, 23, 37), 2).shape == (1, 2, 3, 23, 37)


def test_joint_model_routes_each_task_to_its_codec():
    tasks = [MMNIST, TAXIBJ]
    model = build_unistd(tasks, {t.name: settings("smoke", t.dataset) for t in tasks})
    assert set(model.tasks) == {"mmnist-10-10", "taxibj-4-4"} and len(model.codecs) == 2
    assert model(torch.rand(2, 10, 1, 64, 64), 10, task="mmnist-10-10").shape == (2, 10, 1, 64, 64)
    assert model(torch.rand(3, 4, 2, 32, 32), 6, task="taxibj-4-4").shape == (3, 6, 2, 32, 32)
    loss = model.loss(torch.rand(2, 4, 2, 32, 32), torch.rand(2, 4, 2, 32, 32), 0, task="taxibj-4-4")
    assert loss.ndim == 0 and torch.isfinite(loss)
    view = model.for_task("taxibj-4-4")  # a plain STModel for code that calls forward(x, t_out)
    x = torch.rand(1, 4, 2, 32, 32)
    assert torch.equal(view(x, 4), model(x, 4, task="taxibj-4-4"))
    assert count_macs(view, TAXIBJ) < count_macs(model.for_task("mmnist-10-10"), MMNIST)
    with pytest.raises(ValueError, match="pass task="):
        model(torch.rand(1, 10, 1, 64, 64), 10)
    with pytest.raises(ValueError, match="not built for task 'kth-10-10'"):
        model(torch.rand(1, 10, 1, 64, 64), 10, task="kth-10-10")


def test_joint_build_errors():
    hp = {MMNIST.name: settings("smoke", "mmnist")}
    with pytest.raises(UserError, match="no hyper-parameters for taxibj-4-4"):
        build_unistd([MMNIST, TAXIBJ], hp)
    hp[TAXIBJ.name] = settings("smoke", "taxibj", depth=3)
    with pytest.raises(UserError, match="shared setting 'depth'"):
        build_unistd([MMNIST, TAXIBJ], hp)
    with pytest.raises(UserError, match="unknown hyper-parameter"):
        build_unistd(MMNIST, settings("smoke", "mmnist", n_experts=3))


# ---------------------------------------------------------------- training


def test_ranks_train_then_round_on_the_engine_hook_and_stay_frozen_after_a_reload():
    model = build_unistd(MMNIST, settings("smoke", "mmnist", rank_epochs=2))
    groups = model.optimizer_param_groups({})
    ranks = next(g for g in groups if g["name"] == "ranks")
    assert ranks["optimizer"] == "sgd" and ranks["nesterov"] and ranks["lr"] == 0.05
    assert len(ranks["params"]) == len(model.adapters)
    with torch.no_grad():
        model.adapters[0].rank.add_(1.0)  # sum of ranks now C + experts: the budget term sees it
    assert model.rank_budget_loss().item() == pytest.approx(model.adapters[0].experts)
    y = torch.rand(1, 10, 1, 64, 64)
    x = torch.rand(1, 10, 1, 64, 64)
    mse = torch.nn.functional.mse_loss(model(x, 10), y)
    assert model.loss(x, y, 0).item() == pytest.approx(mse.item() + model.adapters[0].experts, rel=1e-5)
    model.on_epoch_start(1)
    assert model.ranks_trainable()
    model.on_epoch_start(2)
    assert not model.ranks_trainable() and [g["name"] for g in model.optimizer_param_groups({})] == ["weights"]
    assert all(float(r) == round(float(r)) for m in model.adapters for r in m.rank)
    assert model.loss(x, y, 0).item() == pytest.approx(mse.item(), rel=1e-5)
    again = build_unistd(MMNIST, settings("smoke", "mmnist", rank_epochs=2))
    again.load_state_dict(model.state_dict())
    assert not again.ranks_trainable()


# ---------------------------------------------------------------- the paper's numbers

TABLE_9 = [(TAXIBJ, 6.91), (MMNIST, 7.36), (Task("kth", 10, 10, (1, 128, 128)), 29.89),
           (Task("human", 4, 4, (3, 256, 256)), 31.53)]


@pytest.mark.parametrize("task, gmacs", TABLE_9, ids=[t.dataset for t, _ in TABLE_9])
def test_paper_profile_macs_are_within_ten_percent_of_table_9(task, gmacs):
    with torch.device("meta"):
        model = SPEC.build(task, settings("paper", task.dataset))
    macs = count_macs(model, task) / 1e9
    assert macs == pytest.approx(gmacs, rel=0.10), f"{task}: {macs:.2f} GMACs vs Table 9's {gmacs}"


def test_paper_profile_trainable_params_match_table_7_for_three_tasks():
    # Table 7: UniSTD trained on KITTI + Traffic4Cast + KTH has 18.5M trainable parameters
    tasks = [Task("kitti", 10, 10, (3, 128, 160)), Task("traffic4cast", 9, 3, (8, 128, 112)),
             Task("kth", 10, 10, (1, 128, 128))]
    with torch.device("meta"):
        model = SPEC.build(tasks, {t.name: settings("paper", t.dataset) for t in tasks})
    assert model.trainable_params() / 1e6 == pytest.approx(18.5, rel=0.05)
    assert sum(p.numel() for p in model.backbone.frozen_parameters()) == 12 * 7087872 + 2 * 768  # ViT-B blocks


def test_registration_declares_the_paper_tables():
    assert SPEC.family == "recurrent-free" and SPEC.multitask
    assert {d: SPEC.settings_for("paper", d)["enc_blocks"] for d in ("taxibj", "mmnist", "kth", "human", "sevir",
                                                                    "enso")} == \
        {"taxibj": 2, "mmnist": 3, "kth": 3, "human": 4, "sevir": 4, "enso": 1}
    paper = SPEC.settings_for("paper", "kth")
    assert (paper["epochs"], paper["lr"], paper["optimizer"], paper["rank_epochs"], paper["init_rank"]) == \
        (90, 7e-4, "adamw", 10, 4.5)
    assert {"pretrained", "rank_budget", "max_rank"} <= SPEC.known_keys()
