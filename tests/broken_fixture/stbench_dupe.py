"""A plugin that registers a model name another plugin already uses."""
from stbench import ModelSpec, STModel, hookimpl


@hookimpl
def stbench_register_models(register):
    register(ModelSpec(name="persistence", family="baseline", build=lambda task, hparams: STModel()))
