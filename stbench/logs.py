"""Run logs: the training loss per step, per-epoch summaries and the final metrics, written as they happen
beside the run record: a CSV, TensorBoard event files (written here in TensorBoard's own record format,
so no TensorBoard install is needed to produce them), and MLflow or Weights & Biases when asked for."""
import contextlib
import csv
import io
import os
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .errors import UserError
from .files import write_text_atomic

LOGGERS = ("none", "csv", "tensorboard", "mlflow", "wandb")
DEFAULT_LOGGERS = ("csv", "tensorboard")
CSV_NAME = "log.csv"
CSV_FIELDS = ("step", "epoch", "name", "value", "wall_time")


def check_loggers(names: Sequence[str]) -> List[str]:
    names = [n for n in names if n]
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UserError(f"--logger {unknown[0]}: choose from {', '.join(LOGGERS)} (comma-separated)")
    if "none" in names and len(names) > 1:
        raise UserError("--logger none cannot be combined with other loggers")
    return [] if names == ["none"] else names


class RunLog:
    """Fans each logged number out to the chosen loggers. ``scalar(name, value, step, epoch)``; ``image(name, path,
    step)`` reaches the trackers that keep pictures (MLflow, W&B). ``config`` (the run's resolved settings) and
    ``tags`` (the run's stbench hash, model, task, profile, seed) go to the trackers when their run starts."""

    def __init__(self, run_dir: Path, names: Sequence[str], run_name: str = "", resumed_step: Optional[int] = None,
                 config: Optional[Dict] = None, tags: Optional[Dict[str, str]] = None):
        self.sinks = []
        tags = {k: str(v) for k, v in (tags or {}).items()}
        for name in names:
            if name == "csv":
                self.sinks.append(CSVLog(Path(run_dir) / CSV_NAME, resumed_step))
            elif name == "tensorboard":
                self.sinks.append(EventFileLog(Path(run_dir) / "tensorboard"))
            elif name == "mlflow":
                self.sinks.append(MLflowLog(run_name, config or {}, tags))
            elif name == "wandb":
                self.sinks.append(WandbLog(run_name, config or {}, tags))

    @property
    def keeps_images(self) -> bool:
        return any(hasattr(sink, "image") for sink in self.sinks)

    def scalar(self, name: str, value: float, step: int, epoch: Optional[int] = None) -> None:
        for sink in self.sinks:
            sink.scalar(name, float(value), int(step), epoch)

    def image(self, name: str, path: Path, step: int) -> None:
        for sink in self.sinks:
            if hasattr(sink, "image"):
                sink.image(name, Path(path), int(step))

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


# ---------------------------------------------------------------- library warnings

WARNINGS_NAME = "warnings.log"


class WarningRoute:
    """Where library warnings (PyTorch's, numpy's, a plugin's ``warnings.warn``) go while a command runs: into
    the ``warnings.log`` of the run in progress (beside ``log.csv``), never onto the terminal as raw text;
    with ``debug`` they are shown on stderr as well. Warnings outside any run are counted for one note line."""

    def __init__(self, debug: bool):
        self.debug = debug
        self.folders: List[Path] = []
        self.count, self.outside, self.files = 0, 0, []

    def show(self, message, category, filename, lineno, file=None, line=None):
        import warnings

        self.count += 1
        text = warnings.formatwarning(message, category, filename, lineno, line)
        path = self.folders[-1] / WARNINGS_NAME if self.folders else None
        if path is not None and _append_line(path, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text.rstrip()}\n"):
            if path not in self.files:
                self.files.append(path)
        else:
            self.outside += 1
        if self.debug:
            print(text.rstrip(), file=sys.stderr, flush=True)

    def note(self) -> Optional[str]:
        """The one line a command ends with when warnings were held back, or None."""
        if not self.count or self.debug:
            return None
        where = f"; in {', '.join(str(p) for p in self.files[:3])}" if self.files else ""
        return (f"stbench: note: {self.count} library warning{'s' if self.count > 1 else ''} kept off the terminal"
                f"{where} (--debug shows them)")


def _append_line(path: Path, text: str) -> bool:
    """Append one line, or nothing (a full disk leaves the file as it was: a warning never fails a run)."""
    try:
        with open(path, "ab") as handle:
            size = handle.tell()
            try:
                handle.write(text.encode("utf-8", "replace"))
                handle.flush()
                return True
            except OSError:
                with contextlib.suppress(OSError):
                    handle.truncate(size)
    except OSError:
        pass
    return False


_ROUTES: List[WarningRoute] = []


@contextlib.contextmanager
def routed_warnings(debug: bool = False):
    """Route library warnings for the block (a command): see :class:`WarningRoute`."""
    import warnings

    with warnings.catch_warnings():
        route = WarningRoute(debug)
        warnings.showwarning = route.show
        _ROUTES.append(route)
        try:
            yield route
        finally:
            _ROUTES.remove(route)


@contextlib.contextmanager
def warnings_into(folder: Optional[Path]):
    """Warnings of the block go to ``folder/warnings.log`` (a run's folder) when a command routes them."""
    route = _ROUTES[-1] if _ROUTES else None
    if route is None or folder is None:
        yield
        return
    route.folders.append(Path(folder))
    try:
        yield
    finally:
        route.folders.pop()


class CSVLog:
    """``log.csv``: one row per number. A resumed run drops the rows past its checkpoint first, so the file
    holds each step once; every rewrite is atomic. A file it cannot read (garbled, not its columns) is moved
    aside, as a damaged checkpoint is, and the log starts again, so a rerun never fails the same way twice."""

    def __init__(self, path: Path, resumed_step: Optional[int]):
        self.path, self.rows = path, []
        if path.exists() and resumed_step is not None:
            self.rows = self._kept(resumed_step)
        self.pending = 0

    def _kept(self, resumed_step: int) -> List[Dict]:
        try:
            with open(self.path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if tuple(reader.fieldnames or ()) != CSV_FIELDS:
                    raise ValueError(f"its columns are {reader.fieldnames}, not {', '.join(CSV_FIELDS)}")
                return [row for row in reader if int(row["step"]) <= resumed_step and row["name"].startswith("train/")]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, csv.Error) as error:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            os.replace(self.path, aside)
            problem = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
            print(f"stbench: warning: the run log {self.path.resolve()} cannot be read ({problem}); moved it to "
                  f"{aside.name} and logging afresh", file=sys.stderr, flush=True)
            return []

    def scalar(self, name, value, step, epoch):
        self.rows.append({"step": step, "epoch": "" if epoch is None else epoch, "name": name, "value": repr(value),
                          "wall_time": f"{time.time():.3f}"})
        self.pending += 1
        if name.startswith("train/epoch") or not name.startswith("train/"):
            self.flush()

    def flush(self):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, buffer.getvalue())
        self.pending = 0

    def close(self):
        if self.pending:
            self.flush()


# ---------------------------------------------------------------- TensorBoard's event file format

def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's checksum: crc32c rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        bits = value & 0x7F
        value >>= 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def event_bytes(wall_time: float, step: int, tag: Optional[str] = None, value: Optional[float] = None,
                file_version: Optional[str] = None) -> bytes:
    """A serialised tensorflow ``Event``: wall_time (1, double), step (2, int64), file_version (3) or a
    ``Summary`` (5) holding one ``Value`` with tag (1) and simple_value (2, float)."""
    out = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if tag is not None:
        summary_value = _bytes_field(1, tag.encode()) + _field(2, 5) + struct.pack("<f", value)
        out += _bytes_field(5, _bytes_field(1, summary_value))
    return out


def record_bytes(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", masked_crc(data))


class EventFileLog:
    """``tensorboard/events.out.tfevents.<time>.<host>``, one per session (a resumed run adds a file; TensorBoard
    reads them together). Appended record by record with ordinary writes: a kill leaves every whole record
    readable, and a write the disk refuses is cut back to the last whole record (a file that holds none is
    removed) and reported as one line."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.handle = open(self.path, "ab", buffering=0)
        self.written, self.pending = 0, bytearray()
        self._write(event_bytes(time.time(), 0, file_version="brain.Event:2"))
        self.flush()

    def _write(self, data: bytes) -> None:
        self.pending += record_bytes(data)

    def flush(self) -> None:
        if not self.pending or self.handle is None:
            return
        try:
            view = memoryview(bytes(self.pending))
            while view:
                view = view[self.handle.write(view):]
        except OSError as error:
            self._cut_back()
            from .files import as_disk_full

            full = as_disk_full(error, self.path)
            if full is not None:
                raise full from error
            raise
        self.written += len(self.pending)
        self.pending.clear()

    def _cut_back(self) -> None:
        """Leave the file as it was after its last whole record (or no file, when it holds none)."""
        with contextlib.suppress(OSError):
            os.ftruncate(self.handle.fileno(), self.written)
        with contextlib.suppress(OSError):
            self.handle.close()
        self.handle = None
        if not self.written:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def scalar(self, name, value, step, epoch):
        self._write(event_bytes(time.time(), step, tag=name, value=value))
        if not name.startswith("train/loss"):
            self.flush()

    def close(self):
        if self.handle is None:
            return
        self.flush()
        self.handle.close()
        self.handle = None


def read_event_file(path) -> List[Dict]:
    """The scalars of an event file as [{step, tag, value}], checking every checksum (tests, and tools
    without TensorBoard)."""
    data, out, at = Path(path).read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc(header), "header checksum"
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked_crc(body), "data checksum"
        at += 16 + length
        out.append(_parse_event(body))
    return [event for event in out if "tag" in event]


def _read_varint(data: bytes, at: int):
    shift = value = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def _parse_event(body: bytes) -> Dict:
    event, at = {}, 0
    while at < len(body):
        key, at = _read_varint(body, at)
        number, wire = key >> 3, key & 7
        if wire == 1:
            at += 8
        elif wire == 0:
            value, at = _read_varint(body, at)
            if number == 2:
                event["step"] = value
        elif wire == 2:
            length, at = _read_varint(body, at)
            payload = body[at:at + length]
            at += length
            if number == 5:  # Summary -> Value -> tag, simple_value
                _, inner = _read_varint(payload, 0)
                length2, inner = _read_varint(payload, inner)
                value_bytes = payload[inner:inner + length2]
                _, j = _read_varint(value_bytes, 0)
                tag_length, j = _read_varint(value_bytes, j)
                event["tag"] = value_bytes[j:j + tag_length].decode()
                j += tag_length + 1
                event["value"] = struct.unpack("<f", value_bytes[j:j + 4])[0]
        elif wire == 5:
            at += 4
    return event


def flat_params(config: Dict, prefix: str = "") -> Dict[str, str]:
    """Nested settings as MLflow parameters: ``{"train": {"lr": 0.1}}`` -> ``{"train.lr": "0.1"}``."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, name + "."))
        else:
            flat[name] = str(value)[:500]
    return flat


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


class MLflowLog:
    """MLflow (``pip install 'stbench[mlflow]'``, the light mlflow-skinny is enough), imported only when asked for.

    A run in the experiment ``$MLFLOW_EXPERIMENT_NAME`` (default ``stbench``) of ``$MLFLOW_TRACKING_URI`` (a server,
    a database, or a local folder ``file:./mlruns``, which MLflow 3 opens only with ``MLFLOW_ALLOW_FILE_STORE=true``):
    the settings as parameters, the stbench hash and the run's identity as tags, every number as a metric (sent in
    batches per epoch: a step's loss is not a round trip) and pictures as artifacts under ``images/``."""

    BATCH = 900  # MLflow accepts at most 1000 metrics per batch

    def __init__(self, run_name, config, tags):
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UserError("--logger mlflow: mlflow is not installed; pip install 'stbench[mlflow]' (or drop it)") \
                from None
        self.Metric, self.pending = Metric, []
        try:
            self.client = MlflowClient()
            experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "stbench"
            experiment = self.client.get_experiment_by_name(experiment_name)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self.client.create_experiment(experiment_name))
            self.run_id = self.client.create_run(experiment_id, run_name=run_name or None, tags=tags).info.run_id
            params = [Param(k, v) for k, v in flat_params(config).items()]
            for start in range(0, len(params), 100):  # MLflow accepts at most 100 parameters per batch
                self.client.log_batch(self.run_id, params=params[start:start + 100])
        except Exception as error:  # no server, a refused file store, a missing database driver: one line
            from mlflow import get_tracking_uri

            raise UserError(f"--logger mlflow: cannot start a run at {get_tracking_uri()} ({_first_line(error)}); "
                            "set MLFLOW_TRACKING_URI to a reachable server or database, or to file:./mlruns with "
                            "MLFLOW_ALLOW_FILE_STORE=true") from None

    def scalar(self, name, value, step, epoch):
        self.pending.append(self.Metric(name, value, int(time.time() * 1000), step))
        if name.startswith("train/epoch") or not name.startswith("train/") or len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self):
        while self.pending:
            batch, self.pending = self.pending[:self.BATCH], self.pending[self.BATCH:]
            self.client.log_batch(self.run_id, metrics=batch)

    def image(self, name, path, step):
        self.client.log_artifact(self.run_id, str(path), artifact_path=f"images/{name}")

    def close(self):
        self.flush()
        self.client.set_terminated(self.run_id)


class WandbLog:
    """Weights & Biases (``pip install 'stbench[wandb]'``), imported only when asked for. One W&B run per stbench run
    in the project ``$WANDB_PROJECT`` (default ``stbench``): the settings as its config, the stbench hash and the
    run's identity as tags, every number in its history and pictures as images. With ``WANDB_MODE=offline`` it
    writes ``wandb/offline-run-*`` (under ``$WANDB_DIR``) and needs no network; ``wandb sync`` uploads it later."""

    def __init__(self, run_name, config, tags):
        try:
            import wandb
        except ImportError:
            raise UserError("--logger wandb: wandb is not installed; pip install 'stbench[wandb]' (or drop it)") \
                from None
        self.wandb = wandb
        labels = [f"{key}:{value}" if key != "stbench_hash" else value for key, value in tags.items()]
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "stbench", name=run_name or None,
                                  config=config, tags=[label[:64] for label in labels], reinit="create_new")
        except Exception as error:  # not logged in, no network: one line
            raise UserError(f"--logger wandb: cannot start a W&B run ({_first_line(error)}); run 'wandb login', or "
                            "set WANDB_MODE=offline to log without a network and 'wandb sync' later") from None

    def scalar(self, name, value, step, epoch):
        self.run.log({name: value}, step=step)

    def image(self, name, path, step):
        self.run.log({name: self.wandb.Image(str(path))}, step=step)

    def close(self):
        self.run.finish()
