"""`make -f examples/lake.mk demo`: two nights against a real sandbox into a local lake, a
contact added and another deleted in between."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]


def demo(tmp_path: Path, fmt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            "examples/lake.mk",
            "demo",
            f"BIN={Path(sys.executable).parent}",
            f"RESULTS={tmp_path / fmt}",
            f"FORMAT={fmt}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_two_nights_make_two_delta_versions(tmp_path: Path) -> None:
    done = demo(tmp_path, "delta")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (
        f"{tmp_path}/delta/lake/account=northwind-sandbox/contacts ['MERGE', 'WRITE']"
        in done.stdout
    )


def test_two_nights_in_parquet_leave_one_change_file(tmp_path: Path) -> None:
    done = demo(tmp_path, "parquet")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    changes = list(
        (tmp_path / "parquet" / "lake").glob("account=*/contacts/_changes/run=*/*.parquet")
    )
    assert len(changes) == 1
    ops = sorted(pq.read_table(changes[0], columns=["_op"])["_op"].to_pylist())
    assert ops == ["delete", "upsert"]
