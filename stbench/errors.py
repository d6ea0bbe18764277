"""Errors a user can cause: they end a command with one line and exit code 2."""
import difflib


class UserError(Exception):
    """A mistake in what the user asked for or gave; the message says what to do."""


class DiskFull(UserError):
    """A write that found no space left (ENOSPC, a quota): one line saying where, how much was free and which
    file (see :func:`stbench.files.disk_full`). A run that meets one fails; the others go on."""


def nearest(name, choices, n=3):
    """A ' (did you mean ...?)' suffix naming the closest known names, or ''."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown(kind, name, choices):
    """A UserError for an unknown name, suggesting the nearest ones."""
    known = ", ".join(sorted(choices)) or "none registered"
    return UserError(f"unknown {kind} '{name}'{nearest(name, choices)}; known: {known}")


def require(module: str, needed_for: str, install: str):
    """The optional package ``module`` imported, or one clear line: ``<needed_for> needs ...: pip install <install>``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{needed_for} needs {' and '.join(install.split())}: pip install {install}") from None
