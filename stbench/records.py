"""Run records: one JSON file per run, written atomically; reading and querying them."""
import json
import math
import os
import platform
from pathlib import Path
from typing import Dict, List

RECORD_NAME = "record.json"
SCHEMA_VERSION = 1


def write_json_atomic(path, payload) -> Path:
    """Write JSON to ``path`` so a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False, default=_jsonable)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def write_text_atomic(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def clean_floats(value):
    """NaN/inf are not JSON; keep them readable as strings ('inf') instead of invalid tokens."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: clean_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_floats(v) for v in value]
    return value


def read_records(out_dir) -> List[Dict]:
    """Every readable record under ``out_dir/runs``; unreadable files are skipped with a note."""
    records = []
    for path in sorted(Path(out_dir, "runs").glob(f"*/*/{RECORD_NAME}")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        record["_path"] = str(path)
        records.append(record)
    return records


def versions() -> Dict[str, str]:
    import numpy
    import torch

    from . import __version__
    from .plugins import plugin_info

    found = {"stbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
             "numpy": numpy.__version__}
    found["plugins"] = {p["name"]: p["version"] for p in plugin_info()}
    return found


def hardware(device) -> Dict[str, str]:
    import torch

    from .allocator import in_effect

    info = {"device": str(device), "cpu": _cpu_name(), "cpu_threads": torch.get_num_threads(),
            "malloc": in_effect(), "platform": platform.platform()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def hardware_label(record) -> str:
    hw = record.get("hardware", {})
    if hw.get("gpu"):
        return hw["gpu"]
    malloc = f", malloc {hw['malloc']}" if hw.get("malloc") else ""  # records before 2026-11-23 lack it
    return f"{hw.get('cpu', 'CPU')} ({hw.get('cpu_threads', '?')} threads{malloc})"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
