import torch
from torch import nn

from stbench.config import TRAIN_DEFAULTS
from stbench.engine import make_optimizers, spread_subset


class TwoGroups(nn.Module):
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


def test_default_is_one_optimizer_over_trainable_parameters():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].weight.requires_grad_(False)
    (only,) = make_optimizers(model, dict(TRAIN_DEFAULTS["smoke"]))
    assert isinstance(only, torch.optim.Adam)
    assert sum(p.numel() for g in only.param_groups for p in g["params"]) == 2 + 4 + 2


def test_spread_subset_is_even_and_deterministic():
    data = list(range(100))
    subset = spread_subset(data, 5)
    assert [subset[i] for i in range(len(subset))] == [0, 25, 50, 74, 99]
    assert spread_subset(data, None) is data and spread_subset(data, 500) is data
