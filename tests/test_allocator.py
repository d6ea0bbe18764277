"""glibc malloc mode: freed large blocks stay with the process (keep) or go back to the system."""
import subprocess
import sys
import textwrap

import pytest

from stbench import allocator
from stbench.cli import main
from stbench.errors import UserError

# allocate and free a 64 MiB tensor, then report how much of it is still resident
PROBE = textwrap.dedent("""
    import os, sys
    from stbench import allocator
    print(allocator.keep_freed_memory(sys.argv[1]))
    import torch
    page = os.sysconf("SC_PAGE_SIZE")
    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page
    before = resident()
    x = torch.ones(16 * 2 ** 20)
    del x
    print((resident() - before) / 2 ** 20)
""")

linux_glibc = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's mallopt is Linux/glibc only")


def _probe(mode):
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    applied, kept = out.split()
    return applied, float(kept)


@pytest.mark.slow
@linux_glibc
def test_keep_holds_freed_memory_and_system_gives_it_back():
    applied, kept = _probe("keep")
    assert applied == "keep" and kept > 60, f"{kept:.1f} MiB of a freed 64 MiB block still resident"
    applied, kept = _probe("system")
    assert applied == "system" and kept < 8, f"{kept:.1f} MiB of a freed 64 MiB block still resident"


def test_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("STBENCH_MALLOC", raising=False)
    assert allocator.malloc_mode() == "keep"
    monkeypatch.setenv("STBENCH_MALLOC", " System ")
    assert allocator.malloc_mode() == "system"
    monkeypatch.setenv("STBENCH_MALLOC", "jemalloc")
    with pytest.raises(UserError, match="STBENCH_MALLOC='jemalloc'.*keep, system"):
        allocator.malloc_mode()


def test_a_bad_mode_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("STBENCH_MALLOC", "jemalloc")
    assert main(["list", "models"]) == 2
    err = capsys.readouterr().err.strip()
    assert "STBENCH_MALLOC" in err and len(err.splitlines()) == 1
