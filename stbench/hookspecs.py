"""The hook specifications: the whole plugin API of stbench, and the run protocol it serves.

A plugin is a module named by an entry point in the ``stbench`` group (built-in plugins register exactly
as a third party does). It implements any of the three hooks below with ``@stbench.hookimpl``; each hook
receives a ``register`` callback and calls it once per thing it adds; core calls the hooks through
pluggy, so ``tryfirst`` / ``trylast`` mean what pluggy documents. Core checks every spec as it registers: a safe name (lowercase letters, digits, ``.``, ``_``, ``-``), and for models and datasets
declarations that fit the settings schema (:mod:`stbench.config`). A plugin that fails to import or
to register is reported and skipped; it never breaks the others.

The run protocol, which is what core does with what plugins register (``stbench run``):

1. **Plan** (:mod:`stbench.planning`). A task ``<dataset>-<T_in>-<T_out>`` names a registered
   :class:`stbench.DatasetSpec`; its protocol is equal, extended or reduced. Settings resolve as
   engine defaults of the profile < ``DatasetSpec.train_defaults`` < ``ModelSpec.train`` /
   ``ModelSpec.hparams`` for (profile, dataset or ``hparams_like``) < the command line. A run is one
   model, its task (or several, jointly), a profile and a seed; its training identity is what changes
   the weights, its evaluation identity the metrics, their options and the test clips.
2. **Data** (:mod:`stbench.data`). ``DatasetSpec.open(root, split, t_in, t_out)`` returns a
   :class:`stbench.Clips` of ``(x, y)`` pairs, ``x: [t_in, C, H, W]``, ``y: [t_out, C, H, W]``,
   float32, normalised as the spec (or the clips' own ``mean`` / ``std``) says. Missing data is a
   :class:`stbench.UserError` of one line.
3. **Build and profile.** ``ModelSpec.build(task, hparams)`` returns an :class:`stbench.STModel`
   (``ModelSpec.build_joint(tasks, {task name: hparams})`` a :class:`stbench.MultiTaskModel`);
   params and MACs are counted at batch 1 over the whole inference rollout.
4. **Train** (:mod:`stbench.training`). Per epoch: ``Clips.set_epoch(epoch)``,
   ``model.on_epoch_start(epoch)``, then per batch ``model.loss(x, y, step)`` (with ``task=`` for a
   joint model) and one step of the optimizers made from ``model.optimizer_param_groups(train_cfg)``
   (one per piece where ``model.split_batch(x, y)`` splits the batch; a model with ``update_stages``,
   e.g. a GAN, yields one loss per stage from ``model.stage_losses`` and each updates only its stage's
   parameter groups, in turn), then one of the schedule;
   a checkpoint after every epoch, from which an interrupted run resumes.
5. **Evaluate** (:mod:`stbench.evaluation`). ``model(x, t_out)`` in eval mode under no_grad; the
   prediction is de-normalised and streamed through each :class:`stbench.Metric`
   (``reset``, ``update(pred, true)``, ``compute() -> {key: float | NotAvailable}``, and
   ``per_frame``, ``per_clip``, ``provenance``); ``MetricSpec.info()`` says how to show each key.
6. **Record** (:mod:`stbench.records`). One typed run record per task, written atomically, with every
   resolved setting, ``model.record_notes()``, versions and hardware; then the task's leaderboard is
   regenerated from the records alone.

Every optional hook and attribute has its default in the class that declares it (``STModel``,
``MultiTaskModel``, ``Clips``, ``Metric``, ``ModelSpec``, ``DatasetSpec``, ``MetricSpec``); the run
path never probes plugin objects for what they might have. :mod:`stbench.testing` checks a model against
this contract, and core's test suite runs those checks over every installed model.
"""
import pluggy

hookspec = pluggy.HookspecMarker("stbench")
hookimpl = pluggy.HookimplMarker("stbench")


@hookspec
def stbench_register_models(register) -> None:
    """Register model families.

    Called once per process, the first time a command needs a registry (``stbench list``, ``run``, ``eval``,
    ...), after every plugin has loaded; the three hooks are called then, models first, then datasets, then
    metrics. Pluggy calls the plugins' implementations in its order (``tryfirst`` ones first, ``trylast`` ones
    last, otherwise the last registered first).

    :param register:
        A callback taking one :class:`stbench.ModelSpec`; call it once per model name. It checks the spec
        (a safe name, declarations that fit the settings schema) and raises :class:`stbench.UserError` if
        they do not fit, or :class:`stbench.PluginError` if the name is already registered (the error names
        both plugins).

    ``ModelSpec.build`` is later called as ``build(task, hparams)`` and returns an :class:`stbench.STModel`;
    ``ModelSpec.build_joint`` (optional) as ``build_joint(tasks, {task.name: hparams})`` and returns a
    :class:`stbench.MultiTaskModel`.

    The return value is ignored. An exception other than :class:`stbench.PluginError` is reported as that
    plugin's failure and the plugin is skipped (what it registered before failing stays); the other
    plugins are still called.
    """


@hookspec
def stbench_register_datasets(register) -> None:
    """Register datasets.

    Called once per process, right after :func:`stbench_register_models`, in pluggy's order as for it. A
    plugin that may clash with others by design (datasets declared by the user's files) marks its
    implementation ``trylast`` so that, on a clash, its own registration is the one refused.

    :param register:
        A callback taking one :class:`stbench.DatasetSpec`; call it once per dataset name. It checks the
        spec's name and ``train_defaults`` (:class:`stbench.UserError`) and refuses a name already registered
        (:class:`stbench.PluginError`, naming both plugins).

    The spec knows the on-disk layout, the frame shape, the normalisation and the canonical tasks of the
    dataset. ``open(root, split, t_in, t_out)`` returns :class:`stbench.Clips`; ``check(root)`` describes a
    data folder; ``prepare(source, root)`` converts an official download the user has into the layout
    ``open`` reads; ``sample_data(root)`` writes a tiny copy of that layout for the dataset contract test.

    The return value is ignored; an exception other than :class:`stbench.PluginError` skips the plugin as
    for :func:`stbench_register_models`.
    """


@hookspec
def stbench_register_metrics(register) -> None:
    """Register streaming metrics.

    Called once per process, right after :func:`stbench_register_datasets`, in pluggy's order as for
    :func:`stbench_register_models`.

    :param register:
        A callback taking one :class:`stbench.MetricSpec`; call it once per metric name. It checks the name
        (:class:`stbench.UserError`) and refuses a name already registered (:class:`stbench.PluginError`,
        naming both plugins).

    ``MetricSpec.build`` is later called as ``build(context)`` with a :class:`stbench.MetricContext` and
    returns a :class:`stbench.Metric`. Its results are reported under the registered name: the key
    ``Metric.name`` becomes ``MetricSpec.name``; other keys (``csi_74``) are kept as they are.

    The return value is ignored; an exception other than :class:`stbench.PluginError` skips the plugin as
    for :func:`stbench_register_models`.
    """
