"""Models that update their parameters in turns within one step (GANs): STModel.update_stages / stage_losses."""
import pytest
import torch

from stbench import STModel
from stbench.training import RunFailed, staged_step


class TwoStages(STModel):
    """Stage 'first' pulls a to 1; stage 'second' pulls b to a, as a is after the first stage's update."""

    update_stages = ("first", "second")

    def __init__(self, first_stage="first"):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(()))
        self.b = torch.nn.Parameter(torch.zeros(()))
        self.first_stage = first_stage

    def forward(self, x, t_out):
        return x[:, -1:].expand(-1, t_out, -1, -1, -1) * self.b

    def stage_losses(self, x, y, step):
        yield self.first_stage, (self.a - 1) ** 2
        yield "second", (self.b - self.a) ** 2

    def loss(self, x, y, step):
        return sum(loss for _, loss in self.stage_losses(x, y, step))

    def optimizer_param_groups(self, train_cfg):
        return [{"params": [self.a], "stage": "first"}, {"params": [self.b], "stage": "second"}]


def _optimizer(model):
    return torch.optim.SGD(model.optimizer_param_groups({}), lr=0.5)


def test_a_later_stage_sees_the_weights_an_earlier_stage_updated():
    model = TwoStages()
    x = torch.zeros(1, 1, 1, 2, 2)
    total = staged_step(model, [_optimizer(model)], x, x, 0)
    # first: grad a = 2 (a - 1) = -2, so a = 1; second: b - a = -1 with the updated a, so b = 1 and a is untouched
    # (one joint update of the sum would leave b at 0: b - a is 0 before any update)
    assert model.a.item() == pytest.approx(1.0) and model.b.item() == pytest.approx(1.0)
    assert total.item() == pytest.approx(1.0 + 1.0)  # the first loss before its update, the second after


def test_a_group_without_a_declared_stage_fails_the_run():
    model = TwoStages()
    optimizer = torch.optim.SGD([{"params": [model.a]}, {"params": [model.b], "stage": "second"}], lr=0.5)
    with pytest.raises(RunFailed, match="names stage None"):
        staged_step(model, [optimizer], torch.zeros(1, 1, 1, 2, 2), torch.zeros(1, 1, 1, 2, 2), 0)


def test_stages_out_of_order_fail_the_run():
    model = TwoStages(first_stage="second")
    with pytest.raises(RunFailed, match="where 'first' was due"):
        staged_step(model, [_optimizer(model)], torch.zeros(1, 1, 1, 2, 2), torch.zeros(1, 1, 1, 2, 2), 0)


def test_models_without_stages_keep_one_update():
    assert STModel.update_stages == ()
