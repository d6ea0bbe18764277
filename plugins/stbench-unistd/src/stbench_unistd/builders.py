"""UniSTD's builders: one task (``build``) or several sharing one backbone (``build_joint``)."""
from stbench import Task, UserError

from .model import UniSTD, split_hparams


def build_single(task, hparams):
    """UniSTD for one task (the ModelSpec's ``build``)."""
    return build_unistd(task, hparams)


def build_unistd(tasks, hparams):
    """One task and its hparams, or a list of tasks and ``{task.name: hparams}`` (a joint model; the
    ModelSpec's ``build_joint``)."""
    if isinstance(tasks, Task):
        tasks, per_task = [tasks], {tasks.name: dict(hparams or {})}
    else:
        tasks = list(tasks)
        missing = [t.name for t in tasks if t.name not in (hparams or {})]
        if missing:
            raise UserError(f"unistd joint build: no hyper-parameters for {', '.join(missing)}; pass "
                            "{task.name: hparams} for every task")
        per_task = {t.name: dict(hparams[t.name] or {}) for t in tasks}
    if not tasks:
        raise UserError("unistd: build needs at least one task")
    if len({t.name for t in tasks}) != len(tasks):
        raise UserError(f"unistd joint build: a task is named twice in {', '.join(t.name for t in tasks)}")
    for task in tasks:
        if task.shape is None:
            raise ValueError(f"task {task} has no frame shape; resolve it against its dataset first")
    split = {name: split_hparams(hp) for name, hp in per_task.items()}
    first = tasks[0].name
    shared = split[first][0]
    for name, (other, _) in split.items():
        differ = sorted(k for k in shared if other[k] != shared[k])
        if differ:
            key = differ[0]
            raise UserError(f"unistd joint model: the shared setting '{key}' is {shared[key]!r} for {first} but "
                            f"{other[key]!r} for {name}; shared settings ({', '.join(differ)}) must agree")
    return UniSTD(tasks, {name: own for name, (_, own) in split.items()}, shared)

