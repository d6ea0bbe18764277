"""Tasks (`<dataset>-<T_in>-<T_out>`) and the protocol derived from them."""
import re
from dataclasses import dataclass, replace
from typing import Optional, Tuple

from .errors import UserError

_TASK = re.compile(r"^(?P<dataset>[a-z][a-z0-9_]*(?:-[a-z][a-z0-9_]*)*)-(?P<t_in>-?\d+)-(?P<t_out>-?\d+)$")


@dataclass(frozen=True)
class Task:
    """One prediction problem: observe ``t_in`` frames of a dataset, predict ``t_out``.

    ``shape`` (C, H, W) is filled in from the dataset spec by
    :func:`stbench.plugins.resolve_task`; a parsed-only task has ``shape=None``.
    """

    dataset: str
    t_in: int
    t_out: int
    shape: Optional[Tuple[int, int, int]] = None

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.t_in}-{self.t_out}"

    @property
    def protocol(self) -> str:
        """`equal` (T_out = T_in), `extended` (T_out > T_in) or `reduced` (T_out < T_in)."""
        if self.t_out == self.t_in:
            return "equal"
        return "extended" if self.t_out > self.t_in else "reduced"

    @property
    def length(self) -> int:
        """Frames one clip must hold: observed plus predicted."""
        return self.t_in + self.t_out

    def with_shape(self, shape) -> "Task":
        return replace(self, shape=tuple(int(s) for s in shape))

    def __str__(self) -> str:
        return self.name


def parse_task(text: str) -> Task:
    """Parse `<dataset>-<T_in>-<T_out>`; dataset names may contain dashes."""
    match = _TASK.match(str(text).strip().lower())
    if not match:
        raise UserError(
            f"malformed task '{text}': expected <dataset>-<T_in>-<T_out>, e.g. mmnist-10-10 or kth-10-40"
        )
    t_in, t_out = int(match["t_in"]), int(match["t_out"])
    if t_in < 1 or t_out < 1:
        raise UserError(f"task '{text}': T_in and T_out must be at least 1 (got {t_in} and {t_out})")
    return Task(match["dataset"], t_in, t_out)


SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def check_name(name: str, what: str) -> str:
    """A model, dataset, metric, task, profile or run name that is safe as one path component:
    lowercase letters, digits, '.', '_' and '-', no '..'."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name or len(name) > 200:
        raise UserError(f"{what} name {name!r} is not allowed: use lowercase letters, digits, '.', '_' and '-' "
                        "(no '/', no '..')")
    return name


def parse_list(text: str):
    """Split a comma-separated CLI list, dropping empty items."""
    return [item.strip() for item in str(text).split(",") if item.strip()]
