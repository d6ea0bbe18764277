"""The command line: run, eval, predict, profile, score, list, plugins, weights, status, leaderboard, report, data."""
import argparse
import functools
import json
import os
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

from . import __version__, allocator, plugins
from .config import check_device, check_override_keys, check_profile, check_seed, parse_overrides
from .errors import UserError, nearest
from .specs import DATA_ROOT_VARIABLE, default_data_root
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
    return parse_overrides(items, "--metric-option") if items else {}


def check_metric_options(options, names, where):
    from .planning import check_metric_options as check

    return check(options, names, where)


# ---------------------------------------------------------------- commands

def _seeds(args):
    if args.seeds and args.repeats:
        raise UserError("give --seeds or --repeats, not both")
    if args.repeats is not None:
        if args.repeats < 1:
            raise UserError(f"--repeats must be at least 1, got {args.repeats}")
        return list(range(args.seed, args.seed + args.repeats))
    if args.seeds:
        seeds = [check_seed(text, "--seeds") for text in parse_list(args.seeds)]
        if len(set(seeds)) != len(seeds):
            raise UserError(f"--seeds {args.seeds}: a seed is named twice")
        return seeds
    return [check_seed(args.seed)]


def _overrides(args, models):
    overrides = parse_overrides(args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs  # the same check as --set epochs=N
    select_on = getattr(args, "select_on", None)
    if select_on is not None:
        overrides["select_on"] = select_on  # the same check as --set select_on=...
        if select_on != "last":  # selecting needs validation passes: every epoch unless --set says otherwise
            overrides.setdefault("val_every", 1)
    return check_override_keys(overrides, models)


def _precision(args) -> str:
    from .training import PRECISIONS

    if args.precision not in PRECISIONS:
        raise UserError(f"--precision {args.precision}: choose one of {', '.join(PRECISIONS)}")
    return args.precision


def _machine(args):
    """The device, loader workers and torchrun processes of this command."""
    from .distributed import device_for, join_from_environment
    from .running import Machine, pick_device

    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    requested = check_device(args.device)
    processes = join_from_environment(requested)
    device = device_for(processes, pick_device(requested))
    from .logs import check_loggers

    loggers = tuple(check_loggers(parse_list(vars(args).get("logger") or "csv,tensorboard")))
    from .compiling import check_compile

    return Machine(device=device, workers=args.workers, processes=processes, loggers=loggers,
                   compile=check_compile(vars(args).get("compile")))


def _run_grid(args, plans):
    """``--launcher local|slurm``: one process per planned run, handed its frozen plan (a file beside the
    launch) and this command's other run options; nothing of the command line is parsed again."""
    from . import launch

    if args.joint:
        raise UserError("--joint trains one model on several tasks in one process; run it without --launcher")
    known = _known_options(build_parser(), "run")
    options = {dest: value for dest, value in vars(args).items()
               if dest in known and dest not in PLAN_OPTIONS and value != known[dest].default}
    argvs = launch.plan_argvs(plans, options, args.out)
    outcomes = launch.run_grid(argvs, launcher=args.launcher, jobs=args.jobs, options=args.launcher_option,
                               out_dir=args.out, detach=args.detach, leaderboards=not args.no_leaderboard)
    return 2 if any(outcome.state == "failed" for outcome in outcomes) else 0


def cmd_run(args):
    from .planning import parse_budget, plan_from_json, plans_for
    from .running import check_data, execute_all

    if args.plan:  # one run of a grid: its plan was made once, by the command that launched the grid
        plans = [plan_from_json(_read_plan_file(args.plan)["plan"], f"--plan {args.plan}")]
        machine = _machine(args)
        _, failed = execute_all(plans, args.data_root, args.out, machine, force=args.force, debug=_debug(args),
                                save_predictions=args.save_predictions)
        return 2 if failed else 0
    profile = check_profile(args.profile)
    models = [plugins.get_model(name) for name in _names(args.models, "models")]
    tasks = [plugins.resolve_task(text) for text in _names(args.tasks, "tasks")]
    overrides = _overrides(args, models)
    metrics = parse_list(args.metrics) if args.metrics else None
    if args.launcher is None and (args.jobs != 1 or args.launcher_option or args.detach):
        raise UserError("--jobs, --launcher-option and --detach go with --launcher local or --launcher slurm")
    plans = plans_for([m.name for m in models], tasks, profile, _seeds(args), overrides, metrics,
                      _metric_options(args.metric_option), joint=args.joint, precision=_precision(args),
                      budget=parse_budget(args.budget), samples=args.samples)
    if args.launcher is not None:
        ready, missing = check_data(plans, args.data_root, args.out, args.force)
        return max(_run_grid(args, ready) if ready else 0, 2 if missing else 0)
    machine = _machine(args)
    if args.dry_run:
        from .running import dry_run

        dry_run(plans, args.data_root, args.out, machine)
        return 0
    plans, missing = check_data(plans, args.data_root, args.out, args.force,
                                speak=machine.processes.main)
    _, failed = execute_all(plans, args.data_root, args.out, machine, force=args.force, debug=_debug(args),
                            save_predictions=args.save_predictions)
    if not args.no_leaderboard and machine.processes.main:
        for path in _write_boards(args.out, sorted({p.task.name for plan in plans for p in plan.parts})):
            print(f"leaderboard: {path}")
    return 2 if failed or missing else 0


def cmd_eval(args):
    """Evaluate given weights (a checkpoint file or a run folder) without training."""
    from .planning import plans_for
    from .running import check_data, execute_all, source_run

    models = [plugins.get_model(name) for name in _names(args.models, "models")]
    tasks = [plugins.resolve_task(text) for text in _names(args.tasks, "tasks")]
    if args.frame_interval < 1:
        raise UserError(f"--frame-interval must be at least 1, got {args.frame_interval}")
    given = parse_overrides(args.set)
    source = source_run(args.checkpoint) if Path(args.checkpoint).exists() else None
    trained_on = None
    if source is not None and source.get("model") in {m.name for m in models}:
        # an stbench run: its architecture and profile are the ones the weights were trained with (only what
        # differs from the declaration becomes an override, so the board's label stays readable)
        if args.profile is None:
            args.profile = source.get("profile") or "paper"
        spec, dataset = plugins.get_model(source["model"]), plugins.get_dataset(tasks[0].dataset)
        declared = spec.hparams_for(check_profile(args.profile), dataset.name, dataset.hparams_like)
        given = {**{k: v for k, v in (source.get("hparams") or {}).items() if declared.get(k) != v}, **given}
        trained_on = {"task": source.get("task"), "run": source.get("run"), "profile": source.get("profile"),
                      "seed": source.get("seed")}
    profile = check_profile(args.profile or "paper")
    overrides = check_override_keys(given, models)
    metrics = parse_list(args.metrics) if args.metrics else None
    plans = plans_for([m.name for m in models], tasks, profile, [0], overrides, metrics,
                      _metric_options(args.metric_option), precision=_precision(args), samples=args.samples)
    plans = [replace(plan, frame_interval=args.frame_interval, trained_on=trained_on) for plan in plans]
    machine = _machine(args)
    plans, missing = check_data(plans, args.data_root, training=False,
                                speak=machine.processes.main)
    _, failed = execute_all(plans, args.data_root, args.out, machine, debug=_debug(args), checkpoint=args.checkpoint,
                            save_predictions=args.save_predictions)
    if not args.no_leaderboard and machine.processes.main:
        for path in _write_boards(args.out, sorted({t.name for t in tasks if t.name not in missing})):
            print(f"leaderboard: {path}")
    return 2 if failed or missing else 0


def cmd_predict(args):
    """Predict the future of clips a user gives, in the dataset's native range, with given weights."""
    import numpy as np
    import torch

    from .checkpoints import load_weights, read_checkpoint
    from .data import open_split, statistics_of
    from .files import NpyStream
    from .planning import build_model, plan_run
    from .running import pick_device

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1 (clips per forward pass), got {args.batch_size}")
    device = pick_device(check_device(args.device) or "cpu")  # a device this machine lacks is one line, now
    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    plan = plan_run(args.model, task, check_profile(args.profile), 0,
                    check_override_keys(parse_overrides(args.set), [plugins.get_model(args.model)]))
    clips = _load_array(args.input, "input", spec.value_range)
    if tuple(clips.shape[1:]) != (task.t_in, *spec.shape):
        raise UserError(f"--input has shape {clips.shape}; {task.name} takes [N, {task.t_in}, "
                        f"{', '.join(map(str, spec.shape))}]")
    path = Path(args.checkpoint)
    weights = read_checkpoint(path / "checkpoint.pt" if path.is_dir() else path)
    model = build_model(plan)
    load_weights(model, weights, plan.model_spec)
    try:  # data-derived normalisation (e.g. WeatherBench's training statistics) needs the data
        spec = statistics_of(spec, open_split(spec, args.data_root, "test", task))
    except UserError as error:
        print(f"stbench: note: normalising with {spec.name}'s fixed statistics ({error})", file=sys.stderr)
    model.to(device).eval()
    shape = (len(clips), task.t_out, *spec.shape)
    out = NpyStream(args.out, np.float32, shape)  # its space reserved now: a full disk is one line, before any work
    try:
        with torch.no_grad():
            for start in range(0, len(clips), int(args.batch_size)):
                x = spec.normalize(torch.from_numpy(clips[start:start + int(args.batch_size)])).to(device)
                predicted = spec.denormalize(model(x, task.t_out)).float().cpu().numpy()
                if tuple(predicted.shape[1:]) != shape[1:]:
                    raise UserError(f"model '{args.model}' returned {tuple(predicted.shape)} for {len(x)} clips; "
                                    f"expected [{len(x)}, {', '.join(map(str, shape[1:]))}]")
                if not np.isfinite(predicted).all():
                    raise UserError(f"the model predicted NaN or inf values; check the checkpoint {weights.path}")
                out.write(predicted)
        out.commit()
    except BaseException:
        out.discard()
        raise
    print(f"predicted {shape} -> {Path(args.out).resolve()}")
    return 0


def _write_boards(out, tasks=None):
    """Refresh the boards of ``tasks`` (None: every task with records; an empty list: none)."""
    from .leaderboard import refresh_leaderboards

    return refresh_leaderboards(out, tasks) if tasks is None or tasks else []


def cmd_profile(args):
    from .models import count_params
    from .planning import build_model, plan_run
    from .profiling import count_macs

    profile = check_profile(args.profile)
    models = [plugins.get_model(name) for name in _names(args.models, "models")]
    tasks = [plugins.resolve_task(text) for text in _names(args.tasks, "tasks")]
    overrides = check_override_keys(parse_overrides(args.set), models)
    rows = []
    for task in tasks:
        for spec in models:
            plan = plan_run(spec.name, task, profile, 0, overrides)
            model = build_model(plan)
            part = plan.parts[0]
            params, macs = count_params(model), count_macs(model, task)
            rows.append({"model": spec.name, "task": task.name, "profile": profile, "params": params,
                         "macs": macs, "params_m": round(params / 1e6, 3), "gmacs": round(macs / 1e9, 3),
                         "overrides": part.overrides, "hparams": part.hparams})
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(f"{'model':<18} {'task':<20} {'Params (M)':>11} {'FLOPs (G, MACs)':>16}")
        for row in rows:
            print(f"{row['model']:<18} {row['task']:<20} {row['params_m']:>11.2f} {row['gmacs']:>16.2f}")
    return 0


def _load_array(text, what, value_range):
    """A float32 [N, T, C, H, W] array in the dataset's native range from ``.npy`` or ``.npz[:KEY]``."""
    import numpy as np

    from .safeload import checked_npy, checked_npz_member, npz_keys

    path, _, key = str(text).partition(".npz:")
    path = path + ".npz" if key else path
    if not Path(path).exists():
        raise UserError(f"--{what} {Path(path).resolve()}: no such file")
    if path.endswith(".npz") or zipfile.is_zipfile(path):
        keys = npz_keys(path, f"--{what} {path}")
        if not key and len(keys) == 1:
            key = keys[0]
        if key not in keys:
            raise UserError(f"--{what} {path} holds the arrays {', '.join(keys) or '(none)'}; "
                            f"name one as {path}:KEY")
        array = checked_npz_member(path, key, f"--{what} {path}:{key}")
    else:
        array = checked_npy(path, where=f"--{what} {path}")
    where = f"--{what} {text}"
    if array.dtype.kind not in "iuf":
        raise UserError(f"{where}: values of type {array.dtype} are not numbers; save float or integer frames")
    if array.ndim != 5:
        raise UserError(f"{where}: expected [N, T, C, H, W], got shape {array.shape}")
    if array.size == 0:
        raise UserError(f"{where}: the array is empty (shape {array.shape})")
    if array.dtype.kind in "iu":
        unit = value_range is not None and value_range[1] <= 1
        if unit and array.dtype != np.uint8:
            raise UserError(f"{where}: {array.dtype} values for data in [{value_range[0]:g}, {value_range[1]:g}]; "
                            "save float frames in that range (or uint8 0..255)")
        if unit:
            print(f"stbench: note: {where}: uint8 frames read as value / 255 for data in [0, 1]", file=sys.stderr)
            return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UserError(f"{where}: {int((~np.isfinite(array)).sum())} values are NaN or inf; "
                        "predictions must be finite")
    return array


def cmd_score(args):
    import math

    import torch

    from .evaluation import build_metrics, keyed
    from .metrics import NotAvailable

    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    names = parse_list(args.metrics) if args.metrics else list(spec.default_metrics)
    for name in names if args.metrics else ():
        plugins.get_metric(name)
    options = check_metric_options(_metric_options(args.metric_option), names, "this score")
    pred, true = _load_array(args.pred, "pred", spec.value_range), _load_array(args.true, "true", spec.value_range)
    if pred.shape != true.shape:
        raise UserError(f"--pred has shape {pred.shape} but --true has {true.shape}; they must match")
    if pred.shape[1] != task.t_out or tuple(pred.shape[2:]) != tuple(spec.shape):
        raise UserError(f"arrays of shape {pred.shape} do not fit {task.name}: expected "
                        f"[N, {task.t_out}, {', '.join(map(str, spec.shape))}]")
    metrics = build_metrics(names, spec, task, options, strict=bool(args.metrics))
    for start in range(0, len(pred), 64):
        p = torch.from_numpy(pred[start:start + 64])
        t = torch.from_numpy(true[start:start + 64])
        for _, metric in metrics:
            metric.update(p, t)
    values, unavailable = {}, {}
    for metric_spec, metric in metrics:
        for key, value in keyed(metric_spec, metric, metric.compute()).items():
            if isinstance(value, NotAvailable):
                values[key], unavailable[key] = None, value.reason
            elif value is None or not math.isfinite(value):
                values[key], unavailable[key] = None, f"the value is {value}"
            else:
                values[key] = float(value)
    if args.json:
        print(json.dumps({**values, **({"unavailable": unavailable} if unavailable else {})}))
    else:
        for key, value in values.items():
            print(f"{key}: {format(value, '.6g') if value is not None else 'n/a (' + unavailable[key] + ')'}")
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


def cmd_weights(args):
    """Each weight file a metric can use: where it was found, or where it was looked for and how to get it."""
    options = check_metric_options(_metric_options(args.metric_option), sorted(plugins.metrics()), "stbench weights")
    listing = {name: spec.weight_files(options) for name, spec in sorted(plugins.metrics().items())
               if spec.weight_files is not None}
    if args.json:
        print(json.dumps(listing, indent=2, default=str))
        return 0
    found = total = 0
    for name, items in listing.items():
        for item in items:
            total += 1
            print(item["name"] if item["name"].startswith(name) else f"{name}: {item['name']}")
            if item.get("path"):
                found += 1
                print(f"  found     {item['path']}")
                print(f"  in        {item.get('found_in', '')}")
                if item.get("sha256"):
                    print(f"  sha256    {item['sha256']}")
            else:
                print("  missing")
                for i, place in enumerate(item.get("searched") or []):
                    print(f"  {'searched' if i == 0 else '':<9} {place}")
                print(f"  get it    {item.get('how_to_get', '')}")
            if item.get("note"):
                print(f"  note      {item['note']}")
    print(f"{found} of {total} weight files found" if total else "no installed metric uses weight files")
    return 0


def cmd_status(args):
    from .launch import print_status

    return print_status(args.out)


def cmd_leaderboard(args):
    written = _write_boards(args.out)
    if not written:
        raise UserError(f"no run records under {Path(args.out) / 'runs'}; run 'stbench run' first")
    for path in written:
        print(f"leaderboard: {path}")
    return 0


def cmd_report(args):
    from .report import write_report

    index = write_report(args.out, args.site)
    print(f"report: {index} (open it in a browser; the folder can be copied to any static host)")
    return 0


def cmd_data_check(args):
    from .data import describe, open_all_splits, open_split, validation_source

    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    root = Path(args.data_root)
    try:
        if spec.check is not None:
            print(spec.check(str(root)))
        try:
            train_set, val_set, _ = open_all_splits(spec, root, task, None, None, validate=True)
            missing_val = None
        except UserError as error:  # train and test may still be fine: say so below, then what validation lacks
            train_set, val_set, missing_val = None, None, str(error)
        for split in ("train", "test"):
            dataset = open_split(spec, root, split, task)
            if len(dataset) == 0:
                raise UserError(f"{task.name}: the {split} split under {root.resolve()} holds no clip of "
                                f"{task.length} frames")
            x, y = dataset[0]
            print(f"{split}: {describe(dataset)['clips']} clips for {task.name}; x {tuple(x.shape)}, "
                  f"y {tuple(y.shape)}")
        if missing_val is not None:
            print(f"validation: {missing_val} (runs that validate need it; the others do not)")
        elif val_set is None:
            print(f"validation: none declared by the {spec.name} plugin (runs evaluate their last epoch)")
        else:
            print(f"validation: {len(val_set)} clips for {task.name}, {validation_source(spec)}"
                  + (f" ({len(train_set)} training clips left when a run validates)"
                     if isinstance(spec.validation, float) else ""))
    except UserError:
        # the error stays one line on stderr; the layout it refers to goes to stdout
        print(f"Expected layout of {spec.name} under {root.resolve()}:\n{spec.layout}")
        raise
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

def _data_root_option(parser):
    parser.add_argument("--data-root", default=None,
                        help="where datasets live (default $STBENCH_DATA_ROOT or ./data)")


DEFAULT_OUT = "stbench-out"


def _out_option(parser):
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"runs go to OUT/runs, leaderboards to OUT/leaderboards (default ./{DEFAULT_OUT}, a "
                             "workspace git ignores; '--out .' updates the repository's committed showcase)")


def _metric_option(parser):
    parser.add_argument("--metric-option", action="append", metavar="KEY=VALUE",
                        help="metric option (repeatable), e.g. ssim_data_range=2.0 (OpenSTL's tables), "
                             "lpips_alexnet=PATH, lpips_linear=PATH, fvd_i3d=PATH (a TorchScript I3D such as "
                             "StyleGAN-V's runs code when loaded)")


def _machine_options(parser):
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when present; under torchrun "
                                         "each process takes cuda:LOCAL_RANK)")
    parser.add_argument("--workers", type=int, help="DataLoader workers per process (default: 0 on CPU, the "
                                                    "node's cores shared out on CUDA; recorded)")
    parser.add_argument("--precision", default="32", help="32 | 16-mixed | bf16-mixed (default 32; recorded, and "
                                                          "part of the run's identity)")
    parser.add_argument("--compile", default="off", help="off | on: torch.compile the model (a recurrent model's "
                        "cells) before training and evaluating; compile time and any eager fallback recorded; not "
                        "part of the run's identity (outputs equal eager's to float rounding). Default off: on this "
                        "project's CPU measurements it does not pay for its compile time (benchmarks/compile_speed.py)")


def _save_predictions_option(parser):
    parser.add_argument("--save-predictions", action="store_true",
                        help="write the test set's predictions and targets (predictions.npy, targets.npy; uint8 "
                             "for 8-bit data) beside each record, for stbench score")


def _debug_option(parser):
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failing run (STBENCH_DEBUG=1)")


def _debug(args) -> bool:
    return bool(vars(args).get("debug")) or os.environ.get("STBENCH_DEBUG", "") not in ("", "0")


def _apply_environment(args) -> None:
    """Settings every part of a command (and its worker processes) must see before plugins load."""
    given = vars(args)
    if given.get("data_root"):
        os.environ[DATA_ROOT_VARIABLE] = str(given["data_root"])
    if "data_root" in given:
        args.data_root = default_data_root()
    threads = os.environ.get("STBENCH_THREADS")
    if threads:
        import torch

        try:
            torch.set_num_threads(max(1, int(threads)))
        except ValueError:
            raise UserError(f"STBENCH_THREADS={threads!r}: expected a whole number of threads") from None


_LIST_OPTIONS = {"models", "tasks", "seeds", "metrics", "logger"}
_REPEATED_OPTIONS = {"set", "metric_option", "launcher_option"}


def with_config(argv, parser):
    """``argv`` with the options of a ``--config`` YAML file put in front of the command line's own, so the
    command line wins. Keys are option names (``dry_run`` or ``dry-run``); lists join with commas;
    ``set`` / ``metric_option`` / ``launcher_option`` take a mapping or a list of KEY=VALUE."""
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        return argv
    at = next(i for i, a in enumerate(argv) if a == "--config" or a.startswith("--config="))
    path = argv[at].split("=", 1)[1] if "=" in argv[at] else (argv[at + 1] if at + 1 < len(argv) else "")
    rest = argv[:at] + argv[at + (1 if "=" in argv[at] else 2):]
    from .safeload import yaml_file

    try:
        values = yaml_file(path, f"--config {path}") or {}
    except OSError as error:
        raise UserError(f"--config {path}: cannot read it ({error.strerror or error})") from None
    if not isinstance(values, dict):
        raise UserError(f"--config {path}: expected a mapping of option names to values")
    command = next((a for a in rest if not a.startswith("-")), None)
    tokens = _option_tokens(values, _known_options(parser, command), f"--config {path}")
    where = rest.index(command) + 1
    return rest[:where] + tokens + rest[where:]


def _known_options(parser, command) -> dict:
    """dest -> argparse action of a command's options."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in subparsers.choices[command]._actions if a.option_strings} if command else {}


def _option_tokens(values: dict, known: dict, where: str) -> list:
    """Command-line tokens of a mapping of option names to values (a --config file, a planned run's options)."""
    tokens = []
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("config", "help", "plan"):
            raise UserError(f"{where}: unknown option '{key}'{nearest(dest, known)}; known: "
                            f"{', '.join(sorted(k for k in known if k not in ('config', 'help', 'plan')))}")
        flag = known[dest].option_strings[-1]
        if isinstance(known[dest], (argparse._StoreTrueAction,)):
            tokens += [flag] if value else []
        elif dest in _REPEATED_OPTIONS:
            items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else list(value or [])
            for item in items:
                tokens += [flag, str(item)]
        elif dest in _LIST_OPTIONS and isinstance(value, (list, tuple)):
            tokens += [flag, ",".join(map(str, value))]
        else:
            tokens += [flag, str(value)]
    return tokens


# Options of `stbench run` that decide what a run is (they are in its plan) or how a grid is launched; the
# others are how and where it runs, and a grid's runs get them with their plans (see :func:`_run_grid`).
PLAN_OPTIONS = {"config", "dry_run", "models", "tasks", "profile", "epochs", "set", "samples", "select_on", "budget",
                "seed", "seeds", "repeats", "metrics", "metric_option", "joint", "precision", "launcher", "jobs",
                "launcher_option", "detach", "no_leaderboard", "out", "plan", "raw_argv", "func", "command"}


def with_plan(argv, parser):
    """``stbench run --plan FILE`` (a grid's run): the run options the plan file carries, as tokens."""
    if "--plan" not in argv:
        return argv
    at = argv.index("--plan")
    path = argv[at + 1] if at + 1 < len(argv) else ""
    planned = _read_plan_file(path)
    return argv + _option_tokens(planned.get("options") or {}, _known_options(parser, "run"), f"--plan {path}")


def _read_plan_file(path) -> dict:
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"--plan {path}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise UserError(f"--plan {path}: not a plan file stbench wrote ({error})") from None
    if not isinstance(values, dict) or not isinstance(values.get("plan"), dict):
        raise UserError(f"--plan {path}: not a plan file stbench wrote")
    return values


def build_parser():
    parser = Parser(prog="stbench", description="Benchmark spatio-temporal predictive learning models.",
                    allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"stbench {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, required=True)
    sub.add_parser = functools.partial(sub.add_parser, allow_abbrev=False)  # grids re-split argv by option name

    run = sub.add_parser("run", help="train, evaluate and profile models on tasks; write records and leaderboards")
    run.add_argument("--config", metavar="RUN.yaml",
                     help="a YAML file of this command's options (models: [tau, ustep], profile: quick, set: "
                          "{lr: 1e-3}, ...); options given on the command line win")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (runs, resolved settings, data found or missing) and an estimated "
                          "time from a few measured steps; train and write nothing")
    run.add_argument("--models", required=True, help="comma-separated model names (stbench list models)")
    run.add_argument("--tasks", required=True, help="comma-separated tasks <dataset>-<T_in>-<T_out>")
    run.add_argument("--profile", default="quick", help="smoke | quick | paper (default quick)")
    run.add_argument("--epochs", type=int, help="override the profile's epochs (same as --set epochs=N)")
    _data_root_option(run)
    _out_option(run)
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a hyper-parameter or training setting (repeatable)")
    run.add_argument("--samples", type=int, default=None, metavar="K",
                     help="predictions per test clip for a stochastic model (default: the model's declaration; "
                          "deterministic models are K = 1): best-of-K, mean and spread are reported, and a "
                          "finished run re-evaluates with another K without training")
    run.add_argument("--select-on", choices=["last", "val", "test"], default=None,
                     help="which weights to evaluate: the last epoch's, the best on validation data (the paper "
                          "profile's default), or the best on TEST data, as OpenSTL does (marked on the board); "
                          "val / test validate every epoch unless --set val_every=N")
    run.add_argument("--budget", metavar="KIND=VALUE",
                     help="the same training budget for every model: epochs=N, seconds=S (wall clock, converted "
                          "to epochs by timing a few steps) or macs=M (training MACs); the board says which")
    run.add_argument("--seed", type=int, default=0, help="the seed of a single run (default 0)")
    run.add_argument("--seeds", help="comma-separated seeds: one run per seed, e.g. 0,1,2")
    run.add_argument("--repeats", type=int, help="N runs with seeds --seed .. --seed+N-1")
    run.add_argument("--metrics", help="comma-separated metrics (default: the dataset's)")
    _metric_option(run)
    _machine_options(run)
    run.add_argument("--force", action="store_true", help="train again even if an identical run finished")
    run.add_argument("--joint", action="store_true", help="train one multi-task model on all named tasks")
    run.add_argument("--no-leaderboard", action="store_true",
                     help="write run records only (a launcher regenerates the boards once at the end)")
    _save_predictions_option(run)
    run.add_argument("--plan", help=argparse.SUPPRESS)  # a grid's run: its frozen plan, written by the launcher
    run.add_argument("--launcher", choices=["local", "slurm"],
                     help="run the grid (models x tasks x seeds) as separate processes: a local pool, or one "
                          "Slurm job array through submitit (default: in this process, one after another)")
    run.add_argument("--jobs", type=int, default=1,
                     help="local pool: runs at a time, each with its share of the cores as torch threads")
    run.add_argument("--launcher-option", action="append", metavar="KEY=VALUE",
                     help="slurm: gpus, cpus, mem, partition, time (minutes), account, or any slurm_* setting")
    run.add_argument("--detach", action="store_true", help="slurm: return once the job array is queued")
    run.add_argument("--logger", default="csv,tensorboard",
                     help="run logs beside each record: none, or any of csv, tensorboard, mlflow, wandb "
                          "(comma-separated; mlflow / wandb are imported only when named; default csv,tensorboard)")
    _debug_option(run)
    run.set_defaults(func=cmd_run)

    ev = sub.add_parser("eval", help="evaluate a checkpoint (stbench's, or OpenSTL's .pth / .ckpt) without training")
    ev.add_argument("--models", required=True, help="the model the checkpoint holds (stbench list models)")
    ev.add_argument("--tasks", required=True, help="comma-separated tasks to evaluate it on")
    ev.add_argument("--checkpoint", required=True,
                    help="a checkpoint file (.pt, .pth, .ckpt; loaded as weights only) or an stbench run folder")
    ev.add_argument("--profile", default=None, help="whose architecture settings to build (default: the run's, for "
                    "an stbench run folder; else paper)")
    ev.add_argument("--frame-interval", type=int, default=1, metavar="K",
                    help="evaluate on every K-th frame of longer test clips (temporal-resolution robustness; the "
                         "record and board say so)")
    ev.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hyper-parameter")
    ev.add_argument("--metrics", help="comma-separated metrics (default: the dataset's)")
    ev.add_argument("--samples", type=int, default=None, metavar="K",
                    help="predictions per test clip for a stochastic model (default: the model's declaration; "
                         "deterministic models are K = 1): best-of-K, mean and spread are reported, and a "
                         "finished run re-evaluates with another K without training")
    _metric_option(ev)
    _data_root_option(ev)
    _out_option(ev)
    _machine_options(ev)
    ev.add_argument("--no-leaderboard", action="store_true", help="write the record only")
    _save_predictions_option(ev)
    _debug_option(ev)
    ev.set_defaults(func=cmd_eval)

    pred = sub.add_parser("predict", help="predict the future of given clips with a checkpoint")
    pred.add_argument("--model", required=True, help="the model the checkpoint holds")
    pred.add_argument("--task", required=True, help="the task, e.g. mmnist-10-10 (input T_in frames, T_out out)")
    pred.add_argument("--checkpoint", required=True, help="a checkpoint file or an stbench run folder")
    pred.add_argument("--input", required=True,
                      help="clips [N, T_in, C, H, W] in the dataset's native range (.npy or FILE.npz:KEY)")
    pred.add_argument("--out", required=True, help="where to write the predictions [N, T_out, C, H, W] (.npy)")
    pred.add_argument("--profile", default="paper", help="whose architecture settings to build (default paper)")
    pred.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hyper-parameter")
    pred.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default 16)")
    pred.add_argument("--device", help="cpu, cuda, cuda:N or mps (default cpu)")
    _data_root_option(pred)
    pred.set_defaults(func=cmd_predict)

    prof = sub.add_parser("profile", help="params and FLOPs (MACs) without training")
    prof.add_argument("--models", required=True, help="comma-separated model names")
    prof.add_argument("--tasks", required=True, help="comma-separated tasks <dataset>-<T_in>-<T_out>")
    prof.add_argument("--profile", default="paper", help="smoke | quick | paper (default paper)")
    prof.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hyper-parameter")
    prof.add_argument("--json", action="store_true", help="print JSON instead of a table")
    prof.set_defaults(func=cmd_profile)

    score = sub.add_parser("score", help="score predictions made elsewhere ([N, T, C, H, W] .npy, native range)")
    score.add_argument("--pred", required=True,
                       help="predictions [N, T_out, C, H, W] in native range: a .npy, or a .npz (FILE.npz:KEY)")
    score.add_argument("--true", required=True, help="targets of the same shape (.npy or FILE.npz:KEY)")
    score.add_argument("--task", required=True, help="the task the arrays belong to, e.g. mmnist-10-10")
    score.add_argument("--metrics", help="comma-separated metrics (default: the dataset's)")
    _metric_option(score)
    score.add_argument("--json", action="store_true", help="print JSON (null with the reason where unavailable)")
    score.set_defaults(func=cmd_score)

    lst = sub.add_parser("list", help="list models, datasets, metrics or tasks")
    lst.add_argument("what", choices=["models", "datasets", "metrics", "tasks"], help="what to list")
    _data_root_option(lst)
    lst.set_defaults(func=cmd_list)

    plg = sub.add_parser("plugins", help="installed plugins with their versions and hooks")
    plg.set_defaults(func=cmd_plugins)

    weights = sub.add_parser("weights", help="weight files the metrics can use: found where, or how to get them")
    _metric_option(weights)
    weights.add_argument("--json", action="store_true", help="print {metric: [entry, ...]} as JSON")
    weights.set_defaults(func=cmd_weights)

    stat = sub.add_parser("status", help="queued, running, finished and failed runs under OUT (grids included)")
    _out_option(stat)
    stat.set_defaults(func=cmd_status)

    board = sub.add_parser("leaderboard", help="regenerate OUT/leaderboards from OUT/runs")
    _out_option(board)
    board.set_defaults(func=cmd_leaderboard)

    report = sub.add_parser("report", help="write OUT/report, a static results site (tables, curves, clips, "
                                           "a page per run) from OUT/runs")
    _out_option(report)
    report.add_argument("--site", default=None,
                        help="the folder to write the site into (default OUT/report; replaced as a whole)")
    report.set_defaults(func=cmd_report)

    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", parser_class=Parser, required=True)
    check = data_sub.add_parser("check", help="validate a data folder for a task")
    check.add_argument("task", help="a task of the dataset, e.g. kth-10-20")
    _data_root_option(check)
    check.set_defaults(func=cmd_data_check)
    prepare = data_sub.add_parser("prepare", help="turn an official download into the layout stbench reads (offline)")
    prepare.add_argument("task", help="a task of the dataset, e.g. kth-10-20")
    prepare.add_argument("--from", dest="source", required=True, help="the download: a zip, tar or folder")
    _data_root_option(prepare)
    prepare.set_defaults(func=cmd_data_prepare)
    return parser


def main(argv=None):
    args = None
    try:
        raw = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser()
        args = parser.parse_args(with_plan(with_config(raw, parser), parser))
        args.raw_argv = raw
        allocator.keep_freed_memory()  # before any tensor exists (STBENCH_MALLOC=system opts out)
        _apply_environment(args)
        from .logs import routed_warnings

        with routed_warnings(_debug(args)) as route:  # library warnings: into the runs' logs, not the terminal
            try:
                return args.func(args)
            finally:
                note = route.note()
                if note:
                    print(note, file=sys.stderr)
    except UserError as error:
        print(f"stbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stbench: interrupted; finished epochs are checkpointed, run the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as error:  # a fault outside any one run (a plugin's listing, the disk, ...)
        if args is not None and _debug(args):
            raise
        from .files import as_disk_full

        full = as_disk_full(error)
        if full is not None:
            print(f"stbench: error: {full}", file=sys.stderr)
            return 2
        print(f"stbench: error: {type(error).__name__}: {error} (STBENCH_DEBUG=1 or --debug shows the traceback)",
              file=sys.stderr)
        return 2
    finally:
        if "stbench.distributed" in sys.modules:  # leave torchrun's process group cleanly
            sys.modules["stbench.distributed"].leave()


if __name__ == "__main__":
    sys.exit(main())


def run():
    """Console-script entry point: exit with main()'s code."""
    sys.exit(main())
