"""`make -f examples/migration.mk demo` as the README shows it: a real sandbox, the five
imports twice, and the second run sends no write. The sandbox takes a free port itself
(PORT=0) and the recipe reads which from its first line: no port is picked, closed and raced for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_migration_demo_runs_twice_and_the_second_run_sends_no_write(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            "examples/migration.mk",
            "demo",
            f"BIN={bin_dir}",
            f"RESULTS={tmp_path / 'results'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "writes: first run 32, second run 0" in done.stdout
    assert "Steps: 5 pipeline, 3 state, 4 link done" in done.stdout
