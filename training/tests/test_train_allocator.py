"""The train stage restarts itself under tcmalloc where the machine has it (faster epochs, same weights)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

# Prints what the process has after the stage's restart: its LD_PRELOAD and whether tcmalloc is mapped.
PROBE = (
    "import os\n"
    "from tilescan_training.stages.train import run_under_tcmalloc\n"
    "run_under_tcmalloc()\n"
    "maps = open('/proc/self/maps').read()\n"
    "print(os.environ.get('LD_PRELOAD', ''), 'tcmalloc_minimal' in maps)\n"
)


def _probe(preload: str | None) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    if preload is not None:
        env["LD_PRELOAD"] = preload
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()[-2:]


@pytest.mark.skipif(ctypes.util.find_library("tcmalloc_minimal") is None, reason="no tcmalloc here")
def test_the_stage_runs_under_tcmalloc_where_the_machine_has_it() -> None:
    preload, mapped = _probe(None)
    assert "tcmalloc_minimal" in preload
    assert mapped == "True"


def test_an_allocator_chosen_by_hand_is_kept() -> None:
    preload, mapped = _probe("libc.so.6")
    assert preload == "libc.so.6"
    assert mapped == "False"
