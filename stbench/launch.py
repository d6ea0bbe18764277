"""Grids of runs: a local pool of worker processes or a Slurm job array (submitit), and their status.

A grid is a list of argvs, each ``stbench run --plan FILE`` for one (model, task, seed): the command that
launches the grid plans every run once and writes each frozen plan, with the command's run options, to a
file (:func:`plan_argvs`). A run executes in a fresh process by calling ``stbench.cli.main(argv)`` (exit code
0: finished, else failed). Each launch keeps its bookkeeping under
``OUT/launch/<timestamp>/``: ``index.json`` (launcher, options, every run's argv and job id),
``states/<n>.json`` (written as a run starts and ends) and the runs' logs; ``status(OUT)`` reads them.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .errors import UserError
from .records import RECORD_NAME, write_json_atomic

LAUNCHERS = ("local", "slurm")
LAUNCH_FOLDER = "launch"
INDEX_NAME = "index.json"
STATE_FOLDER = "states"
LOG_FOLDER = "logs"
EXECUTOR_FOLDER = "submitit"
STATES = ("queued", "running", "finished", "failed")
# submitit asks Slurm for 5 minutes when no time is given; a training run needs far more.
DEFAULT_TIME_MINUTES = 24 * 60
POLL_SECONDS = 1.0
LAUNCHER_OPTIONS = {
    "gpus": "GPUs per array task (Slurm --gpus-per-node)",
    "cpus": "CPUs per array task (--cpus-per-task); also the run's torch threads",
    "mem": "memory per array task, e.g. 32G or 500M (--mem)",
    "partition": "Slurm partition (--partition)",
    "time": f"time limit per array task in minutes (--time; default {DEFAULT_TIME_MINUTES})",
    "account": "Slurm account (--account)",
    "processes": "processes per array task (--ntasks-per-node), one per GPU: each run is one DDP run of N",
    "cluster": "slurm (default) or local: submitit's local executor, real subprocesses on this machine",
    "slurm_*": "any other submitit Slurm parameter, e.g. slurm_qos=high, slurm_array_parallelism=16",
}
# submitit's job states, folded into stbench's four words; anything else ended the job early.
_QUEUED = {"PENDING", "REQUEUED", "CONFIGURING", "RESV_DEL_HOLD", "REQUEUE_FED", "REQUEUE_HOLD", "SUSPENDED"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}


@dataclass
class Outcome:
    """How one run of a grid ended (or stands, for a detached launch)."""

    argv: List[str]
    state: str  # one of STATES
    exit_code: Optional[int] = None
    job_id: Optional[str] = None
    seconds: Optional[float] = None
    detail: str = ""


# ---------------------------------------------------------------- small helpers

def available_cores() -> int:
    """The cores this process may run on (its affinity mask, which Slurm and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(jobs: int, cores: Optional[int] = None) -> int:
    """Each of ``jobs`` concurrent runs gets an equal share of the cores as torch threads, at least one."""
    return max(1, (cores or available_cores()) // max(1, int(jobs)))


def thread_environment(threads: int) -> Dict[str, str]:
    """Variables that fix a run's thread count before torch starts (STBENCH_THREADS is recorded)."""
    value = str(int(threads))
    return {"STBENCH_THREADS": value, "OMP_NUM_THREADS": value, "MKL_NUM_THREADS": value}


def launch_environment(launcher: str, folder: Path, index: int) -> Dict[str, str]:
    """Variables that tell a run which launch started it, for its record (how it was launched)."""
    return {"STBENCH_LAUNCHER": launcher, "STBENCH_LAUNCH": f"{folder}#{index}"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _read_json(path: Path) -> Optional[Dict]:
    """A JSON object from ``path``, or None (missing, damaged, or not an object)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def new_launch_folder(out_dir) -> Path:
    """A fresh ``OUT/launch/<timestamp>`` folder (suffixed when two launches start in one second)."""
    base = Path(out_dir) / LAUNCH_FOLDER
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        folder = base / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise UserError(f"cannot create a launch folder under {base.resolve()}; remove old launches there")


_FIELD_DEFAULTS = {"--models": "", "--tasks": "", "--profile": "quick", "--seed": "0", "--out": "."}


def run_fields(argv: Sequence[str]) -> Dict:
    """The model(s), task(s), profile, seed and out folder an argv of ``stbench run`` names (the argvs
    are the ones :func:`plan_argvs` made: options spelled out, as ``--name value`` or ``--name=value``)."""
    found, tokens = dict(_FIELD_DEFAULTS), list(argv)
    for i, token in enumerate(tokens):
        name, sep, value = token.partition("=")
        if name in found:
            found[name] = value if sep else (tokens[i + 1] if i + 1 < len(tokens) else "")
    split = lambda text: [part.strip() for part in str(text).split(",") if part.strip()]  # noqa: E731
    return {"models": split(found["--models"]), "tasks": split(found["--tasks"]), "profile": found["--profile"],
            "seed": found["--seed"], "out": found["--out"]}


def run_label(argv: Sequence[str]) -> str:
    fields = run_fields(argv)
    return (f"{','.join(fields['models']) or '?'} {','.join(fields['tasks']) or '?'} {fields['profile']} "
            f"seed {fields['seed']}")


PLAN_FOLDER = "plans"


def plan_argvs(plans, options: Dict, out_dir) -> List[List[str]]:
    """One ``stbench run --plan FILE`` per planned run: its frozen plan and the command's run options (device,
    data root, loggers, ...) written to ``OUT/launch/plans/<run>.json``; the argv also names the model, task,
    profile and seed, which the launcher's progress lines and ``stbench status`` read (the run reads its plan)."""
    folder = Path(out_dir) / LAUNCH_FOLDER / PLAN_FOLDER
    argvs = []
    for plan in plans:
        path = folder / f"{plan.run_name}.json"
        write_json_atomic(path, {"plan": plan.to_json(), "options": options})
        argvs.append(["run", "--plan", str(path), "--models", plan.model_spec.name,
                      "--tasks", ",".join(p.task.name for p in plan.parts), "--profile", plan.profile,
                      "--seed", str(plan.seed), "--out", str(out_dir), "--no-leaderboard"])
    return argvs


def _canonical_tasks(argvs) -> List[str]:
    """Task names as records spell them (aliases resolved where the plugins know them)."""
    from . import plugins

    names = []
    for argv in argvs:
        for text in run_fields(argv)["tasks"]:
            try:
                name = plugins.resolve_task(text).name
            except UserError:
                name = text  # the run itself reported the bad task
            if name not in names:
                names.append(name)
    return names


def write_grid_leaderboards(out_dir, argvs) -> List[Path]:
    """Regenerate the boards of the grid's tasks once, after every run of it has ended.

    Runs that end together may each write a board from the records they saw; this last pass, with
    every record on disk, is the one that stays.
    """
    from .leaderboard import refresh_leaderboards

    return refresh_leaderboards(out_dir, _canonical_tasks(argvs))


def _unique(argvs) -> List[List[str]]:
    """Each distinct argv once: two workers on one identical run would share one run folder."""
    seen, unique = set(), []
    for argv in argvs:
        key = tuple(str(a) for a in argv)
        if key not in seen:
            seen.add(key)
            unique.append(list(key))
    return unique


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- launcher options

def _memory_gb(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not match:
        raise UserError(f"--launcher-option mem={text}: give a size such as 32G, 500M or 16 (GB)")
    scale = {"k": 1 / 1024 ** 2, "m": 1 / 1024, "g": 1.0, "": 1.0, "t": 1024.0}[match[2].lower()]
    return float(match[1]) * scale


def _positive_int(key, text) -> int:
    try:
        value = int(str(text))
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"--launcher-option {key}={text}: expected a whole number >= 1")
    return value


def _plain_value(text: str):
    """A passthrough value as submitit expects it: a number, a boolean, or the text."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return str(text)


def parse_launcher_options(options) -> Dict[str, object]:
    """``--launcher-option KEY=VALUE`` items (or a dict) checked and typed; unknown keys are a UserError."""
    if options is None:
        return {}
    if isinstance(options, dict):
        items = [(str(k), v) for k, v in options.items()]
    else:
        items = []
        for item in options:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise UserError(f"--launcher-option {item}: expected KEY=VALUE, e.g. --launcher-option gpus=1")
            items.append((key.strip(), value.strip()))
    parsed: Dict[str, object] = {}
    for key, value in items:
        if key in ("gpus", "cpus", "time", "processes"):
            parsed[key] = _positive_int(key, value)
        elif key == "mem":
            parsed[key] = _memory_gb(value)
        elif key in ("partition", "account"):
            parsed[key] = str(value)
        elif key == "cluster":
            if value not in ("slurm", "local"):
                raise UserError(f"--launcher-option cluster={value}: expected slurm or local")
            parsed[key] = value
        elif key.startswith("slurm_") and len(key) > len("slurm_"):
            parsed[key] = _plain_value(value) if isinstance(value, str) else value
        else:
            known = ", ".join(LAUNCHER_OPTIONS)
            raise UserError(f"unknown launcher option '{key}'; known: {known}")
    return parsed


def executor_parameters(options: Dict[str, object]) -> Dict[str, object]:
    """submitit AutoExecutor parameters for the parsed options (one process per array task)."""
    params: Dict[str, object] = {"name": "stbench", "timeout_min": int(options.get("time", DEFAULT_TIME_MINUTES)),
                                 "nodes": 1, "tasks_per_node": int(options.get("processes", 1))}
    if "cpus" in options:
        params["cpus_per_task"] = int(options["cpus"])
    if "gpus" in options:
        params["gpus_per_node"] = int(options["gpus"])
    if "mem" in options:
        params["mem_gb"] = float(options["mem"])
    if "partition" in options:
        params["slurm_partition"] = options["partition"]
    if "account" in options:
        params["slurm_account"] = options["account"]
    params.update({k: v for k, v in options.items() if k.startswith("slurm_")})
    return params


# ---------------------------------------------------------------- the worker of an array task

def _export_process_group() -> int:
    """This process's rank when its array task runs several processes (RANK, WORLD_SIZE, MASTER_ADDR/PORT
    and LOCAL_RANK exported for ``stbench.distributed``); 0 for a single process. Every GPU of the node stays
    visible: each process takes cuda:LOCAL_RANK."""
    try:
        import submitit

        environment = submitit.JobEnvironment()
    except (ImportError, RuntimeError):  # not inside a submitit job (called directly)
        return 0
    if environment.num_tasks <= 1:
        return 0
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return int(environment.global_rank)


def run_in_job(argv: List[str], state_path: str, threads: Optional[int] = None, launcher: str = "slurm") -> int:
    """Run one argv inside a submitit job (a fresh process) and leave its state file.

    The state file, not submitit's pickled result, is what stbench reads back. The run itself is a plain
    ``python -m stbench`` process, exactly as the local pool starts it. An array task of several processes
    (``--launcher-option processes=N``, one per GPU) is one DistributedDataParallel run: each process gets
    torchrun's variables from submitit, and rank 0 alone keeps the state file.
    """
    threads = threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or None
    rank = _export_process_group()
    if rank:
        return subprocess.call([sys.executable, "-m", "stbench", *argv])
    state_file = Path(state_path)
    os.environ.update(launch_environment(launcher, state_file.parents[1], int(state_file.stem)))
    if threads:
        os.environ.update(thread_environment(threads))
    try:
        import submitit

        job_id = submitit.JobEnvironment().job_id
    except RuntimeError:  # not inside a submitit job (called directly)
        job_id = None
    started = time.time()
    base = {"job_id": job_id, "host": socket.gethostname(), "pid": os.getpid(), "threads": threads,
            "started": _now()}
    write_json_atomic(state_path, {**base, "state": "running"})
    code, detail = 1, ""
    try:
        code = subprocess.call([sys.executable, "-m", "stbench", *argv])
    except BaseException as error:  # a crash inside the run: leave a trace before submitit records it
        detail = f"{type(error).__name__}: {error}"
        raise
    finally:
        write_json_atomic(state_path, {**base, "state": "finished" if code == 0 else "failed", "exit_code": code,
                                       "seconds": time.time() - started, "ended": _now(), "detail": detail})
    return code


# ---------------------------------------------------------------- the grid

def run_grid(argvs, launcher="local", jobs=1, options=None, out_dir=".", detach=False, cluster=None,
             progress: Optional[Callable[[str], None]] = _stderr, leaderboards=True) -> List[Outcome]:
    """Run every argv of a grid and return one Outcome per distinct argv, in the grid's order.

    ``local``: ``jobs`` worker processes on this machine, each with cores // jobs torch threads; one
    failing run never stops the others. ``slurm``: one submitit job array, one array task per run;
    waits unless ``detach``. ``cluster`` (or the option ``cluster``) picks submitit's executor:
    ``slurm`` by default, ``local`` for real subprocesses here (tests). When every run has ended the
    boards of the grid's tasks are regenerated once (``leaderboards``).
    """
    if launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher '{launcher}'; known: {', '.join(LAUNCHERS)}")
    argvs = _unique(argvs)
    if not argvs:
        raise UserError("the grid holds no run; name at least one model, task and seed")
    say = progress or (lambda message: None)
    parsed = parse_launcher_options(options)
    if launcher == "local":
        if parsed:
            raise UserError(f"--launcher-option applies to --launcher slurm; the local pool takes --jobs N "
                            f"(given: {', '.join(parsed)})")
        if detach:
            raise UserError("--detach needs --launcher slurm: a local pool lives in this process")
        outcomes = _run_local(argvs, int(jobs), Path(out_dir), say)
    else:
        if cluster is not None:
            parsed.setdefault("cluster", cluster)
        outcomes = _run_submitit(argvs, parsed, Path(out_dir), detach, say)
    if leaderboards and not detach:
        for path in write_grid_leaderboards(out_dir, argvs):
            say(f"leaderboard: {path}")
    return outcomes


def _write_index(folder: Path, launcher, argvs, **fields) -> Dict:
    index = {"launcher": launcher, "created": _now(), "host": socket.gethostname(), "launcher_pid": os.getpid(),
             "folder": str(folder), **fields,
             "runs": [{"index": i, "argv": list(argv), "label": run_label(argv)} for i, argv in enumerate(argvs)]}
    write_json_atomic(folder / INDEX_NAME, index)
    return index


def _state_path(folder: Path, index: int) -> Path:
    return folder / STATE_FOLDER / f"{index}.json"


def _finish_log(part: Path) -> Path:
    final = part.with_name(part.name[1:-len(".part")])
    try:
        os.replace(part, final)
    except OSError:
        return part
    return final


def _run_local(argvs, jobs: int, out_dir: Path, say) -> List[Outcome]:
    """The local pool: up to ``jobs`` concurrent ``python -m stbench`` processes, one per run."""
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: expected a whole number >= 1")
    jobs = min(jobs, len(argvs))
    cores = available_cores()
    threads = threads_per_worker(jobs, cores)
    folder = new_launch_folder(out_dir)
    _write_index(folder, "local", argvs, jobs=jobs, cores=cores, threads_per_run=threads)
    (folder / LOG_FOLDER).mkdir(exist_ok=True)
    say(f"stbench: {len(argvs)} runs on {jobs} worker{'s' if jobs > 1 else ''}, {threads} torch "
        f"thread{'s' if threads > 1 else ''} each ({cores} cores); logs in {folder / LOG_FOLDER}")
    env = {**os.environ, **thread_environment(threads)}
    outcomes: List[Optional[Outcome]] = [None] * len(argvs)
    pending = list(range(len(argvs)))
    running: Dict[int, tuple] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                i = pending.pop(0)
                part = folder / LOG_FOLDER / f".{i}.log.part"
                log = open(part, "wb")
                process = subprocess.Popen([sys.executable, "-m", "stbench", *argvs[i]],
                                           env={**env, **launch_environment("local", folder, i)}, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                running[i] = (process, log, part, time.time())
                write_json_atomic(_state_path(folder, i), {"state": "running", "pid": process.pid,
                                                           "threads": threads, "started": _now()})
            time.sleep(0.1)
            for i in [i for i, (process, *_) in running.items() if process.poll() is not None]:
                process, log, part, started = running.pop(i)
                log.close()
                log_path = _finish_log(part)
                outcome = _local_outcome(argvs[i], process.returncode, time.time() - started, log_path)
                outcomes[i] = outcome
                write_json_atomic(_state_path(folder, i), {
                    "state": outcome.state, "pid": process.pid, "threads": threads, "exit_code": outcome.exit_code,
                    "seconds": outcome.seconds, "ended": _now(), "log": str(log_path), "detail": outcome.detail})
                done = sum(o is not None for o in outcomes)
                say(f"stbench: [{done}/{len(argvs)}] {run_label(argvs[i])}: {outcome.state} "
                    f"({outcome.seconds:.1f} s){'; ' + outcome.detail if outcome.detail else ''}")
    except BaseException:
        _stop_local(folder, running, threads)
        raise
    return outcomes  # type: ignore[return-value]


def _local_outcome(argv, code, seconds, log_path: Path) -> Outcome:
    detail = ""
    if code != 0:
        detail = _last_error(log_path) or f"exit code {code}; see {log_path}"
    return Outcome(list(argv), "finished" if code == 0 else "failed", code, None, seconds, detail)


def _last_error(log_path: Path) -> str:
    """The last 'stbench: error' line of a run's log (what the user would have seen)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line.strip() for line in lines if line.startswith("stbench: error")]
    if errors:
        return errors[-1]
    if any(line.startswith("Traceback") for line in lines):
        return f"crashed; see {log_path}"
    return ""


def _stop_local(folder: Path, running: Dict[int, tuple], threads: int) -> None:
    """Interrupted: ask each worker to stop as Ctrl-C would (it checkpoints), then mark it failed."""
    for process, *_ in running.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.time() + 30
    for i, (process, log, part, started) in running.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        log_path = _finish_log(part)
        write_json_atomic(_state_path(folder, i), {
            "state": "failed", "pid": process.pid, "threads": threads, "exit_code": process.returncode,
            "seconds": time.time() - started, "ended": _now(), "log": str(log_path),
            "detail": "interrupted; run the same command to resume"})


def _executor(folder: Path, cluster: str, parameters: Dict[str, object]):
    """submitit's AutoExecutor for ``cluster``, with the parameters checked (bad ones: a UserError)."""
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm needs submitit: pip install submitit") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm: no 'sbatch' on PATH, so this is not a Slurm login node; run "
                        "there, or use --launcher local (or --launcher-option cluster=local to test the array here)")
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        executor.update_parameters(**parameters)
    except (NameError, AssertionError, ValueError, RuntimeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"--launcher-option: submitit refused the options ({first}); known: "
                        f"{', '.join(LAUNCHER_OPTIONS)}") from None
    return executor


def _run_submitit(argvs, options: Dict[str, object], out_dir: Path, detach: bool, say) -> List[Outcome]:
    """One job array (one array task per run) through submitit; wait for it unless ``detach``."""
    cluster = str(options.pop("cluster", "slurm"))
    parameters = executor_parameters(options)
    folder = new_launch_folder(out_dir)
    executor = _executor(folder / EXECUTOR_FOLDER, cluster, parameters)
    threads = options.get("cpus")
    (folder / STATE_FOLDER).mkdir(exist_ok=True)
    states = [str(_state_path(folder, i)) for i in range(len(argvs))]
    try:
        jobs = executor.map_array(run_in_job, argvs, states, [threads] * len(argvs),
                                  ["slurm" if cluster == "slurm" else f"submitit-{cluster}"] * len(argvs))
    except Exception as error:  # sbatch refused the array: its own message says why
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise UserError(f"submitting the job array failed: {first} (launch folder {folder})") from None
    index = _write_index(folder, "slurm", argvs, cluster=cluster, options=options, parameters=parameters,
                         executor_folder=str(folder / EXECUTOR_FOLDER), threads_per_run=threads)
    for entry, job in zip(index["runs"], jobs):
        entry["job_id"] = str(job.job_id)
    write_json_atomic(folder / INDEX_NAME, index)
    first = str(jobs[0].job_id) if jobs else "?"
    say(f"stbench: submitted {len(jobs)} runs through submitit ({cluster}; first job {first}); status: "
        f"stbench status --out {out_dir}")
    if detach:
        return [Outcome(list(argv), "queued", None, str(job.job_id)) for argv, job in zip(argvs, jobs)]
    return _wait(argvs, jobs, folder, say)


def _wait(argvs, jobs, folder: Path, say) -> List[Outcome]:
    outcomes: List[Optional[Outcome]] = [None] * len(argvs)
    try:
        while any(o is None for o in outcomes):
            for i, job in enumerate(jobs):
                if outcomes[i] is not None:
                    continue
                state = _read_json(_state_path(folder, i)) or {}
                if state.get("state") in ("finished", "failed") or job.done():
                    outcomes[i] = _job_outcome(argvs[i], job, _state_path(folder, i))
                    done = sum(o is not None for o in outcomes)
                    say(f"stbench: [{done}/{len(argvs)}] {run_label(argvs[i])}: {outcomes[i].state}"
                        f"{'; ' + outcomes[i].detail if outcomes[i].detail else ''}")
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        say(f"stbench: stopped waiting; the job array keeps running (stbench status --out {folder.parents[1]})")
        raise
    return outcomes  # type: ignore[return-value]


def _job_outcome(argv, job, state_path: Path) -> Outcome:
    """The state file when the run wrote its end; else the job ended early and submitit's state says how."""
    for attempt in range(4):  # the file may land just after the process ends
        state = _read_json(state_path) or {}
        if state.get("state") in ("finished", "failed"):
            detail = state.get("detail") or ""
            if state["state"] == "failed" and not detail:
                detail = f"exit code {state.get('exit_code')}; see {_job_log(job)}"
            return Outcome(list(argv), state["state"], state.get("exit_code"), str(job.job_id),
                           state.get("seconds"), detail)
        time.sleep(0.5 if attempt < 3 else 0)
    return Outcome(list(argv), "failed", None, str(job.job_id), None,
                   f"job ended as {job.state} before the run finished; see {_job_log(job)}")


def _job_log(job) -> str:
    try:
        return str(job.paths.stderr)
    except Exception:  # noqa: BLE001 (a path for a message only)
        return "the launch folder"


# ---------------------------------------------------------------- status

def _alive(pid, host=None) -> bool:
    """Whether a process of this machine still runs; on another machine stbench cannot tell (assume so)."""
    if host and host != socket.gethostname():
        return True
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):  # gone, or not a process id (a damaged file)
        return False
    except PermissionError:
        return True
    return True


def _submitit_state(index: Dict, job_id: Optional[str]) -> Optional[str]:
    if not job_id:
        return None
    try:
        import submitit

        if index.get("cluster") == "slurm":
            return submitit.SlurmJob(folder=index["executor_folder"], job_id=job_id).state
        return None  # submitit's local jobs are known only to the process that started them
    except Exception:  # noqa: BLE001 (sacct missing or failing: the state is unknown, not an error)
        return None


def _records_by_run(out_dir: Path) -> Dict[tuple, List[Dict]]:
    found: Dict[tuple, List[Dict]] = {}
    for path in sorted(Path(out_dir, "runs").glob(f"*/*/{RECORD_NAME}")):
        record = _read_json(path)
        if not isinstance(record, dict):
            continue
        record["_path"] = str(path)
        key = (str(record.get("model")), str(record.get("task")), str(record.get("profile")), str(record.get("seed")))
        found.setdefault(key, []).append(record)
    for records in found.values():
        records.sort(key=lambda r: str(r.get("created", "")))
    return found


def _run_keys(argv) -> List[tuple]:
    from . import plugins

    fields = run_fields(argv)
    keys = []
    for model in fields["models"]:
        for text in fields["tasks"]:
            try:
                task = plugins.resolve_task(text).name
            except UserError:
                task = text
            keys.append((model, task, str(fields["profile"]), str(fields["seed"])))
    return keys


def _submitit_row_state(index: Dict, entry: Dict, written: Dict):
    """(state, detail) of a submitit run that has not written its end: from Slurm, or from its process."""
    if index.get("cluster") != "slurm":  # submitit's local jobs: only their own state files tell
        if written.get("state") == "running":
            if _alive(written.get("pid"), written.get("host")):
                return "running", ""
            return "failed", "its process ended before the run finished"
        return "queued", ""
    slurm = (_submitit_state(index, entry.get("job_id")) or "UNKNOWN").split(" ")[0].upper()
    if slurm in _RUNNING or (slurm == "UNKNOWN" and written.get("state") == "running"):
        return "running", ""
    if slurm in _QUEUED or slurm == "UNKNOWN":
        return "queued", ""
    return "failed", f"job ended as {slurm} before the run finished"


def _index_problem(index) -> str:
    """What makes a launch index unusable (it was cut short, edited or is not one), or ''."""
    if not isinstance(index, dict):
        return "not readable as a JSON object"
    runs = index.get("runs")
    if not isinstance(runs, list):
        return f"'runs' is {type(runs).__name__ if runs is not None else 'missing'}, not a list"
    for number, entry in enumerate(runs):
        if not isinstance(entry, dict):
            return f"run {number} is {type(entry).__name__}, not an object"
        i, argv = entry.get("index"), entry.get("argv")
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            return f"run {number} has no index number"
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            return f"run {number} has no command line (argv)"
        if not isinstance(entry.get("label", ""), str) or not isinstance(entry.get("job_id") or "", (str, int)):
            return f"run {number} has a label or job id of the wrong type"
    return ""


def _launch_row(index: Dict, folder: Path, entry: Dict, records) -> Dict:
    i, argv = entry["index"], entry["argv"]
    written = _read_json(_state_path(folder, i)) or {}
    row = {"launch": folder.name, "launcher": index.get("launcher"), "index": i, "job_id": entry.get("job_id"),
           "run": entry.get("label") or run_label(argv), "argv": argv, "state": "queued", "detail": "",
           "record": None}
    if written.get("state") in ("finished", "failed"):
        row["state"] = written["state"]
        row["detail"] = written.get("detail") or ("" if written["state"] == "finished"
                                                  else f"exit code {written.get('exit_code')}")
    elif index.get("launcher") == "local":
        if written.get("state") == "running" and _alive(written.get("pid"), index.get("host")):
            row["state"] = "running"
        elif not _alive(index.get("launcher_pid"), index.get("host")):
            row["state"] = "failed"
            row["detail"] = ("the launching command ended before this run "
                             + ("finished" if written.get("state") else "started"))
    else:
        row["state"], row["detail"] = _submitit_row_state(index, entry, written)
    matches = [r for key in _run_keys(argv) for r in records.get(key, [])]
    if matches and row["state"] != "queued":
        record = max(matches, key=lambda r: str(r.get("created", "")))
        row["record"] = record["_path"]
        if row["state"] == "failed" and record.get("status") == "failed" and record.get("error"):
            row["detail"] = row["detail"] or str(record["error"])
    return row


def status(out_dir) -> List[Dict]:
    """Every run launched under ``OUT/launch`` and every other run record under ``OUT/runs``.

    One row each: launch, launcher, index, job_id, run, argv, state (queued | running | finished |
    failed), detail, record. Runs not started by a grid come from their records' ``status``.
    """
    out_dir = Path(out_dir)
    records = _records_by_run(out_dir)
    rows, claimed = [], set()
    for index_path in sorted((out_dir / LAUNCH_FOLDER).glob(f"*/{INDEX_NAME}")):
        index = _read_json(index_path)
        problem = _index_problem(index)
        if problem:
            _stderr(f"stbench: warning: the launch index {index_path} is damaged ({problem}); its runs are "
                    "listed from their records")
            continue
        for entry in index["runs"]:
            row = _launch_row(index, index_path.parent, entry, records)
            if row["record"]:
                claimed.add(row["record"])
            rows.append(row)
    word = {"ok": "finished", "failed": "failed", "running": "running"}
    for key, found in sorted(records.items()):
        for record in found:
            if record["_path"] in claimed:
                continue
            rows.append({"launch": None, "launcher": None, "index": None, "job_id": None,
                         "run": f"{key[0]} {key[1]} {key[2]} seed {key[3]}", "argv": None,
                         "state": word.get(str(record.get("status")), str(record.get("status"))),
                         "detail": str(record.get("error") or ""), "record": record["_path"]})
    return rows


def print_status(out_dir, file=None) -> int:
    """``stbench status --out DIR``: one line per run and a count per state; exit code 0."""
    file = file or sys.stdout
    rows = status(out_dir)
    if not rows:
        raise UserError(f"no runs under {Path(out_dir).resolve()} (neither {LAUNCH_FOLDER}/ nor runs/); "
                        "start some with 'stbench run'")
    print(f"{'state':<9} {'launch':<18} {'job':<14} run", file=file)
    for row in rows:
        where = f"{row['launch']}#{row['index']}" if row["launch"] else "-"
        detail = f"  ({row['detail']})" if row["detail"] else ""
        print(f"{row['state']:<9} {where:<18} {row['job_id'] or '-':<14} {row['run']}{detail}", file=file)
    counts = {state: sum(r["state"] == state for r in rows) for state in STATES}
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    print(f"{len(rows)} runs: {summary}", file=file)
    unfinished = counts["queued"] + counts["running"]
    if not unfinished and any(r["launch"] for r in rows):
        print(f"boards: stbench leaderboard --out {out_dir} regenerates them from every record", file=file)
    return 0


def outcomes_as_json(outcomes: Sequence[Outcome]) -> List[Dict]:
    return [asdict(o) for o in outcomes]
