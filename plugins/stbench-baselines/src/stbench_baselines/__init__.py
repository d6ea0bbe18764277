"""stbench model plugin: the persistence baseline (repeat the last observed frame)."""
from stbench import ModelSpec, hookimpl, lazy, lazy_exports

__getattr__ = lazy_exports(__name__, {"persistence": ("Persistence", "build_persistence")})


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="persistence", family="baseline",
                       build=lazy("stbench_baselines.persistence:build_persistence"),
                       hparams={"smoke": {"default": {"epochs": 0}}, "quick": {"default": {"epochs": 0}},
                                "paper": {"default": {"epochs": 0}}},
                       description="repeats the last observed frame; the floor every model must beat"))
