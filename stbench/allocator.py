"""How CPU memory is handed out: glibc's malloc told to keep freed memory for reuse.

PyTorch allocates CPU tensors with ``malloc``. glibc serves a block above its mmap threshold
(adaptive, at most 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, so a model whose
activations are tens of MiB (a 128x128 decoder: 5 frames x 80 channels = 21 MiB) has the kernel
map and zero those pages again at every layer. With every block taken from malloc's heap and
freed memory kept there, the pages are reused: ``benchmarks/ustep_speed.py --malloc system``
against the default shows the effect side by side (USTEP on kth-10-40 runs ~1.2x faster here;
models whose tensors are small, such as PredRNN++'s 32x32 states, do not change).

The price is that the process keeps its peak heap instead of giving it back to the system.
``STBENCH_MALLOC=system`` leaves glibc's own settings alone. Other C libraries are left alone.
"""
import ctypes
import ctypes.util
import os
import sys

from .errors import UserError

MODES = ("keep", "system")
_M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
_M_MMAP_MAX = -4
_applied = None


def malloc_mode() -> str:
    """``STBENCH_MALLOC`` (keep | system), ``keep`` when unset."""
    mode = os.environ.get("STBENCH_MALLOC", "").strip().lower() or "keep"
    if mode not in MODES:
        raise UserError(f"STBENCH_MALLOC={mode!r} is not a malloc mode; set it to one of {', '.join(MODES)} "
                        "or unset it")
    return mode


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (musl does not)
        libc.mallopt
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory(mode: str = None) -> str:
    """Apply ``mode`` (default :func:`malloc_mode`) once per process; returns what is in effect.

    ``keep``: no block is served by mmap and freed memory is never trimmed. Returns ``"keep"``
    when glibc took both settings, ``"system"`` otherwise (another C library, or ``system`` asked for).
    """
    global _applied
    mode = malloc_mode() if mode is None else mode
    if _applied is not None:
        return _applied
    if mode == "system":
        _applied = "system"
        return _applied
    libc = _glibc()
    took = libc is not None and libc.mallopt(_M_MMAP_MAX, 0) == 1 and \
        libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2 ** 31 - 1)) == 1
    _applied = "keep" if took else "system"
    return _applied


def in_effect() -> str:
    """What this process runs with (``system`` until :func:`keep_freed_memory` has been called)."""
    return _applied or "system"
