"""stbench model plugin: the persistence baseline (repeat the last observed frame)."""
from stbench import ModelSpec, STModel, hookimpl


class Persistence(STModel):
    """Predicts that nothing moves: every future frame equals the last observed one."""

    def forward(self, x, t_out):
        return x[:, -1:].expand(-1, t_out, -1, -1, -1).clone()


def build_persistence(task, hparams):
    return Persistence()


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="persistence", family="baseline", build=build_persistence,
                       hparams={"smoke": {"default": {"epochs": 0}}, "quick": {"default": {"epochs": 0}},
                                "paper": {"default": {"epochs": 0}}},
                       description="repeats the last observed frame; the floor every model must beat"))
