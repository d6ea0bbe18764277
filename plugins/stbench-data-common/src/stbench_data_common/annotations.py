"""JSON annotation files (PredBench's split lists under data/annotations/<name>/), read with one-line errors."""
import json
import os
from pathlib import Path
from typing import Any, Tuple, Type, Union

from stbench import UserError

Kinds = Union[Type, Tuple[Type, ...]]


def read_json(path, what: str, hint: str, kind: Kinds = (dict, list)) -> Any:
    """The parsed file, or a UserError (absolute path) when it is missing, unreadable, not JSON or not ``kind``."""
    path = Path(os.path.abspath(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"missing file {path} ({what}); {hint}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path} ({error}); replace it ({hint})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise UserError(f"{path} is not valid JSON ({error}); replace it ({hint})") from None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(data, kinds):
        names = " or ".join("an object" if k is dict else "a list" if k is list else k.__name__ for k in kinds)
        raise UserError(f"{path} holds a JSON {type(data).__name__}; expected {names} ({what})")
    return data
