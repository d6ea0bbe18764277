"""The persistence baseline's model: every future frame is the last observed one."""
from stbench import STModel


class Persistence(STModel):
    """Predicts that nothing moves: every future frame equals the last observed one."""

    def forward(self, x, t_out):
        return x[:, -1:].expand(-1, t_out, -1, -1, -1).clone()


def build_persistence(task, hparams):
    return Persistence()
