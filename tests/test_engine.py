import torch
from torch import nn

from stbench import Clips, STModel
from stbench.config import TRAIN_DEFAULTS
from stbench.data import limit
from stbench.training import make_optimizers


class TwoGroups(STModel):
    def __init__(self):
        super().__init__()
        self.weights, self.rank = nn.Linear(3, 3), nn.Parameter(torch.ones(2))

    def optimizer_param_groups(self, train_cfg):
        return [{"params": list(self.weights.parameters())},
                {"params": [self.rank], "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.0}]


def test_a_group_that_names_its_optimizer_gets_its_own():
    cfg = dict(TRAIN_DEFAULTS["smoke"], optimizer="adamw", lr=1e-3)
    main, ranks = make_optimizers(TwoGroups(), cfg)
    assert isinstance(main, torch.optim.AdamW) and main.param_groups[0]["lr"] == 1e-3
    assert isinstance(ranks, torch.optim.SGD)
    assert ranks.param_groups[0]["lr"] == 0.05 and ranks.param_groups[0]["nesterov"]


class TwoLayers(STModel):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))


def test_default_is_one_optimizer_over_trainable_parameters():
    model = TwoLayers()
    model.layers[0].weight.requires_grad_(False)
    (only,) = make_optimizers(model, dict(TRAIN_DEFAULTS["smoke"]))
    assert isinstance(only, torch.optim.Adam)
    assert sum(p.numel() for g in only.param_groups for p in g["params"]) == 2 + 4 + 2


def test_limit_is_even_and_deterministic():
    data = list(range(100))
    subset = limit(data, 5)
    assert [subset[i] for i in range(len(subset))] == [0, 25, 50, 74, 99]
    assert limit(data, None) is data and limit(data, 500) is data


class ShiftedClips(Clips):
    """Clips normalised with statistics of their own (as a dataset computing them from its root would)."""

    mean, std = (10.0,), (2.0,)

    def __init__(self):
        self.clips = torch.arange(4 * 4 * 8 * 8, dtype=torch.float32).reshape(4, 4, 1, 8, 8) / 256 - 1.0

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        return self.clips[i, :2], self.clips[i, 2:]


class Zero(STModel):
    def forward(self, x, t_out):
        return torch.zeros(x.shape[0], t_out, *x.shape[2:])


def test_evaluate_denormalises_with_the_statistics_the_opened_data_carries():
    from torch.utils.data import Subset

    from stbench.data import DatasetSpec
    from stbench.evaluation import build_metrics, evaluate
    from stbench.tasks import Task

    spec = DatasetSpec(name="shifted", shape=(1, 8, 8), open=None, max_length=4, layout="", value_range=None)
    task = Task("shifted", 2, 2, (1, 8, 8))
    data = ShiftedClips()
    metrics = build_metrics(["mse"], spec, task)
    result = evaluate(Zero(), Subset(data, [0, 1, 2, 3]), 2, metrics, spec, task)
    # predictions 0 and targets y in normalised units are 10 and 10 + 2 y in native units
    expected = ((2 * data.clips[:, 2:]) ** 2).sum(dim=(2, 3, 4)).mean()
    assert abs(result.metrics["mse"] - float(expected)) < 1e-3 * float(expected)
    assert (spec.mean, spec.std) == (0.0, 1.0)


class PerFrame(STModel):
    """Steps once per target frame, as DMVFN steps once per frame triple; records what each loss saw."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.seen = []

    def forward(self, x, t_out):
        return (x[:, -1:] * self.scale).expand(-1, t_out, -1, -1, -1)

    def split_batch(self, x, y):
        return [(x, y[:, i:i + 1]) for i in range(y.shape[1])]

    def loss(self, x, y, step):
        self.seen.append((tuple(y.shape), step, self.scale.item()))
        return super().loss(x, y, step)


class PieceClips(Clips):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.full((2, 1, 2, 2), 0.5), torch.full((3, 1, 2, 2), 0.25 * (i + 1))


def test_a_split_batch_steps_the_optimizer_per_piece_and_the_schedule_per_batch(tmp_path):
    from stbench.training import SingleTaskBatches, train

    model = PerFrame()
    cfg = dict(TRAIN_DEFAULTS["smoke"], epochs=1, batch_size=2, lr=0.1, optimizer="sgd", schedule="onecycle")
    result = train(model, SingleTaskBatches(PieceClips(), 2, seed=0), cfg, "cpu", tmp_path / "c.pt", "h")
    assert result.steps == 2  # batches: the schedule's steps
    assert [(shape, step) for shape, step, _ in model.seen] == [((2, 1, 1, 2, 2), s) for s in (0, 0, 0, 1, 1, 1)]
    scales = [scale for _, _, scale in model.seen]
    assert all(a != b for a, b in zip(scales, scales[1:]))  # every piece saw the weights the one before moved
    assert len(result.losses) == 1 and result.losses[0] > 0
