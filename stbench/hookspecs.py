"""The hook specifications: the whole plugin API of stbench."""
import pluggy

hookspec = pluggy.HookspecMarker("stbench")
hookimpl = pluggy.HookimplMarker("stbench")


@hookspec
def stbench_register_models(register):
    """Register model families.

    Call ``register(ModelSpec(...))`` once per model name. ``ModelSpec.build``
    is called as ``build(task, hparams)`` and returns an :class:`stbench.STModel`.
    """


@hookspec
def stbench_register_datasets(register):
    """Register datasets.

    Call ``register(DatasetSpec(...))`` once per dataset name. The spec knows
    the on-disk layout, the frame shape, the normalisation and the canonical
    tasks of that dataset.
    """


@hookspec
def stbench_register_metrics(register):
    """Register streaming metrics.

    Call ``register(MetricSpec(...))`` once per metric name. ``MetricSpec.build``
    is called as ``build(context)`` with a :class:`stbench.MetricContext` and
    returns a :class:`stbench.Metric`.
    """
