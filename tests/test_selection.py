"""Honest model selection and the training features of the reference configs: validation clips never from the
test split, the best-on-validation weights evaluated in the paper profile, selection on test data marked,
early stopping, warm-up, a moving average of the weights, gradient accumulation and clipping."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from stbench import Clips, DatasetSpec, STModel, UserError
from stbench.cli import main
from stbench.config import TRAIN_DEFAULTS, check_selection, training_identity
from stbench.data import held_out, limit, open_all_splits
from stbench.tasks import parse_task
from stbench.training import (SingleTaskBatches, Validation, WeightAverage, make_optimizers, make_schedule,
                              train)


class Frames(Clips):
    """``count`` random clips of 4 + 4 frames of 1 x 6 x 6, fixed by ``seed``."""

    def __init__(self, count=16, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.data = torch.rand(count, 8, 1, 6, 6, generator=generator)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index, :4], self.data[index, 4:]


class Net(STModel):
    def __init__(self, batchnorm=False):
        super().__init__()
        norm = [nn.BatchNorm2d(4)] if batchnorm else []
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=not batchnorm), *norm, nn.ReLU(),
                                 nn.Conv2d(4, 1, 3, padding=1))

    def forward(self, x, t_out):
        return (x[:, -1] + self.net(x[:, -1])).unsqueeze(1).expand(-1, t_out, -1, -1, -1)


def _cfg(**changes):
    return dict(TRAIN_DEFAULTS["smoke"], **{"epochs": 2, "batch_size": 4, "lr": 1e-2, **changes})


def _train(tmp_path, cfg, model=None, validation=None, name="run"):
    torch.manual_seed(0)
    model = model or Net()
    batches = SingleTaskBatches(Frames(), cfg["batch_size"], seed=0)
    result = train(model, batches, cfg, "cpu", tmp_path / f"{name}.pt", name, validation=validation)
    return model, result


# ---------------------------------------------------------------- validation clips

def test_limit_is_even_and_deterministic():
    data = list(range(100))
    subset = limit(data, 5)
    assert [subset[i] for i in range(len(subset))] == [0, 25, 50, 74, 99]
    assert limit(data, None) is data and limit(data, 500) is data


def test_a_held_out_fraction_is_the_tail_of_each_of_ten_runs_and_disjoint_from_training():
    rest, val = held_out(Frames(count=100), 0.2)
    assert list(val.indices) == [i for i in range(100) if i % 10 >= 8]  # spread over the set, contiguous runs
    assert sorted(list(rest.indices) + list(val.indices)) == list(range(100))
    rest, val = held_out(Frames(count=40), 0.25, blocks=2)
    assert list(val.indices) == list(range(15, 20)) + list(range(35, 40))
    assert list(held_out(Frames(count=3), 0.1)[1].indices) == [2]  # at least one clip, never all


def _spec(validation, splits=("train", "test")):
    opened = []

    def open_(root, split, t_in, t_out):
        opened.append(split)
        return Frames(count={"train": 20, "val": 5, "test": 7}[split], seed=len(opened))

    return DatasetSpec(name="frames", shape=(1, 6, 6), open=open_, max_length=8, layout="-", splits=splits,
                       validation=validation), opened


def test_validation_comes_from_where_the_dataset_declares_and_never_from_test():
    task = parse_task("frames-4-4")
    spec, opened = _spec(0.2)
    train_set, val_set, test_set = open_all_splits(spec, "root", task, None, None, validate=True)
    assert (len(train_set), len(val_set), len(test_set)) == (16, 4, 7) and "val" not in opened
    assert set(train_set.indices).isdisjoint(val_set.indices)  # both index the same training clips
    spec, opened = _spec("val", splits=("train", "val", "test"))
    train_set, val_set, _ = open_all_splits(spec, "root", task, 10, None, validate=True, val_samples=3)
    assert opened.count("val") == 1 and len(val_set) == 3 and len(train_set) == 10
    _, val_set, test_set = open_all_splits(spec, "root", task, None, None, validate=True, val_on_test=True)
    assert val_set is test_set  # only when asked: OpenSTL's procedure
    assert open_all_splits(spec, "root", task, None, None, validate=False)[1] is None


def test_a_declaration_is_checked_when_the_spec_is_made():
    with pytest.raises(ValueError, match="validation"):
        _spec(1.5)
    with pytest.raises(ValueError, match="needs \"val\" in splits"):
        _spec("val")


# ---------------------------------------------------------------- settings and identity

def test_selection_needs_validation_passes_and_accumulation_must_divide_the_batch():
    with pytest.raises(UserError, match="val_every"):
        check_selection(dict(TRAIN_DEFAULTS["quick"], select_on="val"), "here")
    with pytest.raises(UserError, match="val_every"):
        check_selection(dict(TRAIN_DEFAULTS["quick"], patience=3), "here")
    with pytest.raises(UserError, match="divide"):
        check_selection(dict(TRAIN_DEFAULTS["quick"], accumulate=3), "here")
    check_selection(dict(TRAIN_DEFAULTS["paper"]), "here")


def test_settings_at_their_neutral_values_leave_a_run_identity_as_it_was():
    quick = training_identity(TRAIN_DEFAULTS["quick"])
    assert not {"val_every", "select_on", "val_samples", "ema_decay", "accumulate", "warmup_epochs"} & set(quick)
    assert training_identity(dict(TRAIN_DEFAULTS["quick"], ema_decay=0.999))["ema_decay"] == 0.999
    paper = training_identity(TRAIN_DEFAULTS["paper"])
    assert paper["val_every"] == 1 and paper["select_on"] == "val"


# ---------------------------------------------------------------- training features

def test_warmup_rises_linearly_to_the_schedule_start_then_hands_over():
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    schedule = make_schedule(optimizer, {"schedule": "cosine"}, total_steps=10, warmup_steps=4)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    cosine = [0.1 * (1 + torch.cos(torch.tensor(k / 6 * torch.pi)).item()) / 2 for k in range(6)]
    assert rates[4:] == pytest.approx(cosine)  # the cosine over the 6 steps after the warm-up, from its start


class Interrupted(Net):
    def __init__(self, at_step):
        super().__init__()
        self.at_step = at_step

    def loss(self, x, y, step):
        if step == self.at_step:
            raise KeyboardInterrupt
        return super().loss(x, y, step)


def test_warmup_average_and_selection_resume_exactly(tmp_path):
    cfg = _cfg(epochs=3, warmup_epochs=1.5, schedule="cosine", ema_decay=0.8)
    scores = lambda: (lambda it: lambda: next(it))(iter([3.0, 2.0, 2.5]))  # noqa: E731
    validation = lambda: Validation(score=scores(), metric="mse", higher_is_better=False, every=1, on="val",  # noqa: E731
                                    best_path=tmp_path / "best.pt")
    whole, whole_result = _train(tmp_path, cfg, validation=validation(), name="whole")
    torch.manual_seed(0)
    cut = Interrupted(at_step=6)  # the same initial weights as Net() under seed 0
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, cfg, model=cut, validation=validation(), name="cut")
    resumed_scores = iter([2.0, 2.5])  # epoch 1 was validated before the cut
    again = Validation(score=lambda: next(resumed_scores), metric="mse", higher_is_better=False, every=1, on="val",
                       best_path=tmp_path / "best.pt")
    resumed, result = _train(tmp_path, cfg, validation=again, name="cut")
    assert result.resumed_from_epoch == 1
    assert result.losses == pytest.approx(whole_result.losses, rel=1e-6)
    assert result.selection["history"] == whole_result.selection["history"]
    for (key, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), key


def test_the_weight_average_follows_its_formula_and_is_what_gets_evaluated(tmp_path):
    model = Net()
    average = WeightAverage(model, 0.5)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model)
    for key, value in model.state_dict().items():
        assert torch.allclose(average.shadow[key], 0.5 * start[key] + 0.5 * value)
    model, result = _train(tmp_path, _cfg(ema_decay=0.9), name="ema")
    saved = torch.load(tmp_path / "ema.pt", weights_only=True)
    for key, value in model.state_dict().items():  # evaluated: the average, not the last weights
        assert torch.equal(value, saved["ema"][key].to(value.dtype)), key
    assert any(not torch.equal(saved["model"][k], saved["ema"][k]) for k in saved["model"])
    assert result.selection["ema_decay"] == 0.9


def test_accumulated_micro_batches_train_as_one_batch(tmp_path):
    whole, whole_result = _train(tmp_path, _cfg(), name="whole")
    parts, parts_result = _train(tmp_path, _cfg(accumulate=2), name="parts")
    assert parts_result.losses == pytest.approx(whole_result.losses, rel=1e-6)
    for (key, a), b in zip(whole.state_dict().items(), parts.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), key
    assert "batchnorm_micro_batches" not in parts_result.selection
    _, normed = _train(tmp_path, _cfg(accumulate=2), model=Net(batchnorm=True), name="normed")
    assert normed.selection["batchnorm_micro_batches"] == "BatchNorm normalised over micro-batches of 2 clips"


def test_gradient_clipping_bounds_the_first_step(tmp_path):
    def first_step(clip):
        torch.manual_seed(0)
        model = Net()
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        train(model, SingleTaskBatches(Frames(count=4), 4, seed=0),
              _cfg(epochs=1, optimizer="sgd", schedule="constant", lr=0.1, grad_clip=clip), "cpu",
              tmp_path / f"clip{clip}.pt", "clip")
        return (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()

    # Nesterov SGD's first step is lr * (1 + momentum) * gradient: bounded by the clipped norm
    assert first_step(1e-3) == pytest.approx(0.1 * 1.9 * 1e-3, rel=1e-4)
    assert first_step(None) > 10 * first_step(1e-3)


# ---------------------------------------------------------------- selection and early stopping

def test_patience_stops_the_training_and_the_best_weights_are_the_ones_left(tmp_path):
    scores = iter([3.0, 2.0, 2.5, 2.6, 1.0, 1.0])
    snapshots = {}

    def score():
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return next(scores)

    model = Net()
    validation = Validation(score=score, metric="mse", higher_is_better=False, every=1, on="val",
                            best_path=tmp_path / "best.pt", patience=2, clips=4, source="test")
    model, result = _train(tmp_path, _cfg(epochs=10), model=model, validation=validation, name="stop")
    assert result.selection["stopped_early_at"] == 4 and result.selection["epoch"] == 2
    assert [e for e, _ in result.selection["history"]] == [1, 2, 3, 4] and result.selection["score"] == 2.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[2][key]), key
    assert len(result.losses) == 4
    # the same command again trains nothing more: the stop is part of the checkpoint
    again = Validation(score=lambda: pytest.fail("validated again"), metric="mse", higher_is_better=False, every=1,
                       on="val", best_path=tmp_path / "best.pt", patience=2)
    _, resumed = _train(tmp_path, _cfg(epochs=10), validation=again, name="stop")
    assert resumed.selection["epoch"] == 2 and len(resumed.losses) == 4


def _toy_run(out, root, *extra):
    return main(["run", "--models", "tiny", "--tasks", "toy-6-6", "--data-root", str(root), "--out", str(out),
                 "--set", "batch_size=4", "--metrics", "mse,mae", *extra])


def _records(out):
    return [json.loads(p.read_text()) for p in sorted(Path(out, "runs").glob("*/*/record.json"))]


def test_the_paper_profile_evaluates_the_best_weights_on_validation(use_plugins, toy_root, tmp_path, capsys):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _toy_run(out, toy_root, "--profile", "paper", "--set", "epochs=4", "--set", "lr=0.01") == 0
    (record,) = _records(out)
    selection = record["selection"]
    assert selection["on"] == "val" and selection["metric"] == "mse" and len(selection["history"]) == 4
    best = min(selection["history"], key=lambda h: h[1])
    assert [selection["epoch"], selection["score"]] == best
    assert record["data"]["validation"]["clips"] == 3 and record["data"]["train"]["clips"] == 9
    assert "held out from training" in record["data"]["validation"]["from"]
    saved = torch.load(Path(record["checkpoint"]).with_name("best.pt"), weights_only=True)
    assert saved["epoch"] == selection["epoch"]
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    assert "the best weights on validation data by MSE" in board
    assert "validation mse" in capsys.readouterr().err
    # the best weights are the evaluated ones: evaluating best.pt's model gives the record's metrics
    assert main(["eval", "--models", "tiny", "--tasks", "toy-6-6", "--profile", "paper", "--data-root",
                 str(toy_root), "--out", str(tmp_path / "again"), "--checkpoint", str(Path(record["checkpoint"]).parent
                                                                                     / "best.pt"),
                 "--metrics", "mse,mae"]) == 0
    (again,) = _records(tmp_path / "again")
    assert again["metrics"]["mse"] == pytest.approx(record["metrics"]["mse"], rel=1e-12)


def test_selecting_on_test_data_is_marked_on_the_board(use_plugins, toy_root, tmp_path):
    use_plugins("plugin_fixture", only="testplug,baselines")
    out = tmp_path / "out"
    assert _toy_run(out, toy_root, "--profile", "smoke", "--set", "epochs=3", "--select-on", "test") == 0
    assert _toy_run(out, toy_root, "--profile", "smoke", "--set", "epochs=3") == 0
    test_selected, last = sorted(_records(out), key=lambda r: r["selection"]["on"] != "test")
    assert test_selected["selection"]["on"] == "test" and last["selection"]["on"] == "last"
    assert test_selected["data"]["validation"]["clips"] == test_selected["data"]["test"]["clips"]
    assert test_selected["config_hash"] != last["config_hash"]
    board = (out / "leaderboards" / "toy-6-6.md").read_text()
    rows = [line for line in board.splitlines() if line.startswith("| tiny") and "recurrent-free" in line]
    assert [("select_on=test" in line, "‡" in line) for line in rows] == [(False, False), (True, True)]
    assert "selected on the TEST data" in board and "TEST data (OpenSTL's procedure)" in board
