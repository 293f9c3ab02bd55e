"""`make -f examples/agency.mk demo`: three accounts of one sandbox, two nights, a report per
account; and examples/agency.yaml is an accounts file the parser takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from insightly_etl.accounts import read_accounts
from insightly_etl.summary import schema

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_nights_for_three_accounts_with_a_report_each(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            "make", "--no-print-directory", "-f", "examples/agency.mk", "demo",
            f"BIN={Path(sys.executable).parent}", f"RESULTS={tmp_path}",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[-3:] == ["acme.html", "globex.html", "initech.html"]
    summary = json.loads((tmp_path / "exports" / "_summary.json").read_text())
    jsonschema.validate(summary, schema("summary"))
    by_name = {a["account_name"]: a for a in summary["accounts"]}
    assert sorted(by_name) == ["acme", "globex", "initech"]
    assert by_name["acme"]["objects"]["contacts"]["new"] == 1  # the colleague's, night 2
    assert by_name["initech"]["objects"]["contacts"]["new"] == 0
    assert sorted(by_name["globex"]["objects"]) == ["contacts", "organisations"]
    for name in by_name:
        page = (tmp_path / "exports" / "reports" / f"{name}.html").read_text(encoding="utf-8")
        assert "Rows per object" in page
        # a changes chart only where something changed: Acme's new contact
        assert f'data-charts="{3 if name == "acme" else 2}"' in page


def test_the_example_accounts_file_reads() -> None:
    entries = read_accounts(ROOT / "examples" / "agency.yaml")
    assert [(e.name, e.pod, e.key_env, e.reserve, e.rate) for e in entries] == [
        ("acme", "na1", "ACME_INSIGHTLY_KEY", 500, None),
        ("globex", "eu1", None, 0, 5.0),
    ]
    assert entries[1].key_file == ROOT / "examples" / "keys" / "globex.key"
    assert entries[1].objects == ("contacts", "organisations", "opportunities")
