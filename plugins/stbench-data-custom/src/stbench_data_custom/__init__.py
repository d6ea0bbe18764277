"""stbench dataset plugin: datasets declared by YAML files under ``<data root>/custom/*.yaml``, no code needed.

Each file names the data (an array [N, T, C, H, W] in .npy / .npz / HDF5, or a folder of videos or image
sequences), its splits, its values and its canonical tasks. A file with a mistake is reported in one line on
stderr and skipped; it never stops other datasets or commands.
"""
import sys
from pathlib import Path

from stbench import UserError, default_data_root, hookimpl

from .config import ConfigError, CustomConfig, parse

FOLDER = "custom"
SUFFIXES = (".yaml", ".yml")
MAX_YAML_BYTES = 4 * 1024 * 1024  # stbench.safeload's cap (imported lazily there; this module stays light)


def declaration_files(root) -> list:
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in SUFFIXES and path.is_file())


def warn(message: str) -> None:
    print(f"stbench: warning: {message}; skipped", file=sys.stderr)


def load_declarations(root):
    """(spec, file) for every valid declaration under ``root/custom``; each bad one warned about and skipped."""
    found, names = [], {}
    for path in declaration_files(root):
        path = path.absolute()
        try:
            with open(path, encoding="utf-8") as handle:  # a bounded read: the YAML reader caps the size
                config = parse(path, handle.read(MAX_YAML_BYTES + 1))
        except (OSError, UnicodeDecodeError) as error:
            warn(f"custom dataset {path}: cannot read it ({error})")
            continue
        except ConfigError as error:
            warn(str(error))
            continue
        if config.name in names:
            warn(f"custom dataset {path}: the name '{config.name}' is already declared by {names[config.name]}")
            continue
        from .declaration import build_spec  # numpy / PIL: only when a declaration exists

        try:
            spec = build_spec(config, root)
        except UserError as error:
            warn(f"{error}")
            continue
        names[config.name] = path
        found.append((spec, path))
    return found


# trylast: pluggy calls this hook after every other plugin's, so a custom name that clashes with a plugin's dataset is
# the one reported and skipped, never the plugin's
@hookimpl(trylast=True)
def stbench_register_datasets(register):
    from stbench import PluginError

    for spec, path in load_declarations(default_data_root()):
        try:
            register(spec)
        except PluginError:
            warn(f"custom dataset {path}: the name '{spec.name}' is already a dataset of an installed plugin; "
                 "rename it")
        except UserError as error:  # core's own checks of a registered spec (its name, its declarations)
            warn(f"custom dataset {path}: {error}")


__all__ = ["ConfigError", "CustomConfig", "declaration_files", "load_declarations", "parse"]
