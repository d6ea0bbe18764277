"""The command line: run, profile, score, list, plugins, leaderboard, data check."""
import argparse
import json
import sys
from pathlib import Path

from . import __version__, allocator, plugins
from .config import check_override_keys, check_profile, parse_overrides
from .errors import UserError
from .tasks import parse_list


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2."""

    def error(self, message):
        raise UserError(f"{message} (see '{self.prog} --help')")


def _names(text, what):
    names = parse_list(text)
    if not names:
        raise UserError(f"--{what} needs at least one name, e.g. --{what} {'tau' if what == 'models' else 'mmnist-10-10'}")
    return names


def _metric_options(items):
    return parse_overrides(items) if items else {}


# ---------------------------------------------------------------- commands

def cmd_run(args):
    from .engine import RunFailed, execute, log, pick_device, plan_run
    from .leaderboard import write_leaderboards

    profile = check_profile(args.profile)
    models = [plugins.get_model(name) for name in _names(args.models, "models")]
    tasks = [plugins.resolve_task(text) for text in _names(args.tasks, "tasks")]
    overrides = parse_overrides(args.set)
    check_override_keys(overrides, models)
    metrics = parse_list(args.metrics) if args.metrics else None
    if args.joint:
        from .joint import run_joint

        return run_joint(args, models, tasks, profile, overrides, metrics)
    device = pick_device(args.device)
    plans = [plan_run(m.name, t, profile, args.seed, overrides, args.epochs, metrics,
                      _metric_options(args.metric_option)) for t in tasks for m in models]
    failed, done_tasks = 0, []
    for plan in plans:
        try:
            record = execute(plan, args.data_root, args.out, device, force=args.force)
        except (RunFailed, UserError) as error:
            failed += 1
            log(f"stbench: error: {plan.label}: {error}")
            continue
        done_tasks.append(plan.task.name)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items() if isinstance(v, (int, float)))
        print(f"{plan.label}: {shown}")
    for path in write_leaderboards(args.out, sorted(set(done_tasks) | {p.task.name for p in plans})):
        print(f"leaderboard: {path}")
    return 2 if failed else 0


def cmd_profile(args):
    from .engine import build_model, plan_run
    from .models import count_params
    from .profiling import count_macs

    profile = check_profile(args.profile)
    models = [plugins.get_model(name) for name in _names(args.models, "models")]
    tasks = [plugins.resolve_task(text) for text in _names(args.tasks, "tasks")]
    overrides = parse_overrides(args.set)
    check_override_keys(overrides, models)
    rows = []
    for task in tasks:
        for spec in models:
            plan = plan_run(spec.name, task, profile, 0, overrides)
            model = build_model(plan)
            params, macs = count_params(model), count_macs(model, task)
            rows.append({"model": spec.name, "task": task.name, "profile": profile, "params": params,
                         "macs": macs, "params_m": round(params / 1e6, 3), "gmacs": round(macs / 1e9, 3),
                         "overrides": plan.overrides, "hparams": plan.hparams})
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(f"{'model':<18} {'task':<20} {'Params (M)':>11} {'FLOPs (G, MACs)':>16}")
        for row in rows:
            print(f"{row['model']:<18} {row['task']:<20} {row['params_m']:>11.2f} {row['gmacs']:>16.2f}")
    return 0


def _load_array(path, what):
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"--{what} {path}: no such file") from None
    except (OSError, ValueError) as error:
        raise UserError(f"--{what} {path}: not a readable .npy array ({error})") from None
    if array.ndim != 5:
        raise UserError(f"--{what} {path}: expected [N, T, C, H, W], got shape {array.shape}")
    return array


def cmd_score(args):
    import torch

    from .engine import build_metrics

    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    pred, true = _load_array(args.pred, "pred"), _load_array(args.true, "true")
    if pred.shape != true.shape:
        raise UserError(f"--pred has shape {pred.shape} but --true has {true.shape}; they must match")
    if pred.shape[1] != task.t_out or tuple(pred.shape[2:]) != tuple(spec.shape):
        raise UserError(f"arrays of shape {pred.shape} do not fit {task.name}: expected "
                        f"[N, {task.t_out}, {', '.join(map(str, spec.shape))}]")
    names = parse_list(args.metrics) if args.metrics else list(spec.default_metrics)
    metrics = build_metrics(names, spec, task, _metric_options(args.metric_option), strict=bool(args.metrics))
    for start in range(0, len(pred), 64):
        p = torch.from_numpy(pred[start:start + 64].astype("float32"))
        t = torch.from_numpy(true[start:start + 64].astype("float32"))
        for metric in metrics:
            metric.update(p, t)
    values = {}
    for metric in metrics:
        values.update(metric.compute())
    if args.json:
        print(json.dumps(values))
    else:
        for key, value in values.items():
            print(f"{key}: {value if value is None else format(value, '.6g')}")
    return 0


def cmd_list(args):
    what = args.what
    if what == "models":
        for name, spec in sorted(plugins.models().items()):
            print(f"{name:<18} {spec.family:<15} {spec.plugin:<14} {spec.description}")
    elif what == "datasets":
        for name, spec in sorted(plugins.datasets().items()):
            shape = "x".join(map(str, spec.shape))
            print(f"{name:<18} {shape:<11} max {spec.max_length:<5} {spec.plugin:<14} {spec.description}")
    elif what == "metrics":
        for name, spec in sorted(plugins.metrics().items()):
            print(f"{name:<10} {'higher' if spec.higher_is_better else 'lower':<6} is better  {spec.description}")
    elif what == "tasks":
        for name, spec in sorted(plugins.datasets().items()):
            for task in spec.canonical_tasks:
                parsed = plugins.resolve_task(task)
                print(f"{task:<22} {parsed.protocol:<9} {name}")
    return 0


def cmd_plugins(args):
    info = plugins.plugin_info()
    for item in info:
        print(f"{item['name']:<24} {item['version']:<8} {', '.join(item['hooks'])}")
    for name, error in plugins.failures:
        print(f"{name:<24} FAILED   {error}")
    return 0


def cmd_leaderboard(args):
    from .leaderboard import write_leaderboards

    written = write_leaderboards(args.out)
    if not written:
        raise UserError(f"no run records under {Path(args.out) / 'runs'}; run 'stbench run' first")
    for path in written:
        print(f"leaderboard: {path}")
    return 0


def cmd_data_check(args):
    from .engine import describe, open_split

    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    root = Path(args.data_root)
    if spec.check is not None:
        print(spec.check(str(root)))
    for split in ("train", "test"):
        dataset = open_split(spec, root, split, task)
        if len(dataset) == 0:
            raise UserError(f"{task.name}: the {split} split under {root} holds no clip of {task.length} frames")
        x, y = dataset[0]
        print(f"{split}: {describe(dataset)['clips']} clips for {task.name}; x {tuple(x.shape)}, y {tuple(y.shape)}")
    return 0


def cmd_data_prepare(args):
    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    if spec.prepare is None:
        raise UserError(f"{spec.name} needs no preparation: put the files under {Path(args.data_root).resolve()} "
                        f"as they ship and run 'stbench data check {task.name}'")
    source = Path(args.source).expanduser()
    if not source.exists():
        raise UserError(f"--from {source.resolve()}: no such file or folder")
    print(spec.prepare(str(source.resolve()), str(Path(args.data_root).resolve())))
    return 0


# ---------------------------------------------------------------- parser

def build_parser():
    parser = Parser(prog="stbench", description="Benchmark spatio-temporal predictive learning models.")
    parser.add_argument("--version", action="version", version=f"stbench {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, required=True)

    run = sub.add_parser("run", help="train, evaluate and profile models on tasks; write records and leaderboards")
    run.add_argument("--models", required=True, help="comma-separated model names (stbench list models)")
    run.add_argument("--tasks", required=True, help="comma-separated tasks <dataset>-<T_in>-<T_out>")
    run.add_argument("--profile", default="quick", help="smoke | quick | paper (default quick)")
    run.add_argument("--epochs", type=int, help="override the profile's epochs")
    run.add_argument("--data-root", default="data", help="where datasets live (default ./data)")
    run.add_argument("--out", default=".", help="runs go to OUT/runs, leaderboards to OUT/leaderboards")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hyper-parameter")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--metrics", help="comma-separated metrics (default: the dataset's)")
    run.add_argument("--metric-option", action="append", metavar="KEY=VALUE",
                     help="metric option, e.g. ssim_data_range=2.0 (OpenSTL's tables)")
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    run.add_argument("--force", action="store_true", help="run again even if an identical run finished")
    run.add_argument("--joint", action="store_true", help="train one multi-task model on all named tasks")
    run.set_defaults(func=cmd_run)

    prof = sub.add_parser("profile", help="params and FLOPs (MACs) without training")
    prof.add_argument("--models", required=True)
    prof.add_argument("--tasks", required=True)
    prof.add_argument("--profile", default="paper")
    prof.add_argument("--set", action="append", metavar="KEY=VALUE")
    prof.add_argument("--json", action="store_true")
    prof.set_defaults(func=cmd_profile)

    score = sub.add_parser("score", help="score predictions made elsewhere ([N, T, C, H, W] .npy, native range)")
    score.add_argument("--pred", required=True)
    score.add_argument("--true", required=True)
    score.add_argument("--task", required=True)
    score.add_argument("--metrics")
    score.add_argument("--metric-option", action="append", metavar="KEY=VALUE")
    score.add_argument("--json", action="store_true")
    score.set_defaults(func=cmd_score)

    lst = sub.add_parser("list", help="list models, datasets, metrics or tasks")
    lst.add_argument("what", choices=["models", "datasets", "metrics", "tasks"])
    lst.set_defaults(func=cmd_list)

    plg = sub.add_parser("plugins", help="installed plugins with their versions and hooks")
    plg.set_defaults(func=cmd_plugins)

    board = sub.add_parser("leaderboard", help="regenerate OUT/leaderboards from OUT/runs")
    board.add_argument("--out", default=".")
    board.set_defaults(func=cmd_leaderboard)

    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", parser_class=Parser, required=True)
    check = data_sub.add_parser("check", help="validate a data folder for a task")
    check.add_argument("task")
    check.add_argument("--data-root", default="data")
    check.set_defaults(func=cmd_data_check)
    prepare = data_sub.add_parser("prepare", help="turn an official download into the layout stbench reads (offline)")
    prepare.add_argument("task", help="a task of the dataset, e.g. kth-10-20")
    prepare.add_argument("--from", dest="source", required=True, help="the download: a zip, tar or folder")
    prepare.add_argument("--data-root", default="data", help="where the prepared layout goes (default ./data)")
    prepare.set_defaults(func=cmd_data_prepare)
    return parser


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        allocator.keep_freed_memory()  # before any tensor exists (STBENCH_MALLOC=system opts out)
        return args.func(args)
    except UserError as error:
        print(f"stbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stbench: interrupted; finished epochs are checkpointed, run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


def run():
    """Console-script entry point: exit with main()'s code."""
    sys.exit(main())
