"""Training: optimizers from a model's parameter groups, and batches split into pieces that each take a step."""
import torch
from torch import nn

from stbench import Clips, STModel
from stbench.config import TRAIN_DEFAULTS
from stbench.training import make_optimizers


class TwoGroups(STModel):
    def __init__(self):
        super().__init__()
        self.weights, self.rank = nn.Linear(3, 3), nn.Parameter(torch.ones(2))

    def forward(self, x, t_out):
        return self.weights(x)[:, -1:].expand(-1, t_out, *x.shape[2:]) * self.rank.sum()

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

    def forward(self, x, t_out):
        return self.layers(x)[:, -1:].expand(-1, t_out, *x.shape[2:])


def test_default_is_one_optimizer_over_trainable_parameters():
    model = TwoLayers()
    model.layers[0].weight.requires_grad_(False)
    (only,) = make_optimizers(model, dict(TRAIN_DEFAULTS["smoke"]))
    assert isinstance(only, torch.optim.Adam)
    assert sum(p.numel() for g in only.param_groups for p in g["params"]) == 2 + 4 + 2


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
