"""`insightly-etl validate`, `fields` and `mapping draft` as a user runs them."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "insightly_etl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ},
        timeout=120,
    )


def test_a_clean_file_exits_0(tmp_path: Path) -> None:
    run = cli(
        "validate", "sample_data/contacts.csv", "--mapping", "mappings/contacts.yaml", "--sandbox"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "contacts.csv: 8 rows read (utf-8, ',' delimited): 8 valid, 0 rejected"
    ]


def test_rejected_rows_exit_1_with_a_rejects_file_joined_by_line(tmp_path: Path) -> None:
    data = tmp_path / "fair.csv"
    data.write_text(
        'First Name,Email,Tier\nAda,ada@example.com,Gold\nBob,bob-at-example,gold\n,"carl@example.com",Silver\nDan,dan@example.com,Gold,extra\n',
        encoding="utf-8",
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\ncolumns:\n  First Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n  Tier: Customer_Tier__c\n"
    )
    run = cli("validate", str(data), "--mapping", str(mapping), "--sandbox")
    assert run.returncode == 1, run.stderr
    assert (
        run.stdout.splitlines()[0]
        == "fair.csv: 4 rows read (utf-8, ',' delimited): 1 valid, 3 rejected"
    )
    assert (
        "  Tier                     option          1  line 3: 'gold' is not an option of Customer_Tier__c; did you mean 'Gold'?"
        in run.stdout
    )
    with (tmp_path / "fair.rejects.csv").open(encoding="utf-8-sig", newline="") as f:
        rejects = list(csv.DictReader(f))
    assert [r["line"] for r in rejects] == ["3", "4", "5"]
    assert (
        rejects[0]["errors"]
        == "Email: 'bob-at-example' is not a plausible email address; Tier: 'gold' is not an option of Customer_Tier__c; did you mean 'Gold'?"
    )
    assert rejects[0]["Email"] == "bob-at-example"  # the original row, as it was
    assert rejects[1]["errors"] == "First Name: FIRST_NAME is required"
    assert (
        rejects[2]["errors"] == "4 fields, but the header has 3"
        and rejects[2]["raw"] == "Dan,dan@example.com,Gold,extra"
    )


def test_a_bad_mapping_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("object: contacts\ncolumns:\n  First Name: FIRST_NAM\n")
    run = cli("validate", "sample_data/contacts.csv", "--mapping", str(mapping), "--sandbox")
    assert run.returncode == 2
    assert (
        run.stderr.splitlines()[0]
        == f"Error: {mapping}: columns.First Name: FIRST_NAM is not a field of contacts; did you mean FIRST_NAME?"
    )


def test_an_export_csv_imports_back_without_a_mapping(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    assert (
        cli("export", "contacts", "--sandbox", "--format", "csv", "--out", str(out)).returncode == 0
    )
    run = cli("validate", str(out / "contacts.csv"), "--object", "contacts", "--sandbox")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "220 valid, 0 rejected" in run.stdout


def test_fields_from_an_export_needs_no_api(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    assert (
        cli(
            "export", "contacts", "organisations", "users", "--sandbox", "--out", str(out)
        ).returncode
        == 0
    )
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTLY_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "insightly_etl",
            "validate",
            "sample_data/contacts.csv",
            "--mapping",
            "mappings/contacts.yaml",
            "--fields-from",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env_free,
    )
    assert run.returncode == 0, run.stderr
    fields = subprocess.run(
        [sys.executable, "-m", "insightly_etl", "fields", "contacts", "--fields-from", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env_free,
    )
    assert (
        "Customer_Tier__c             Customer Tier              DROPDOWN                  Bronze, Silver, Gold, Platinum"
        in fields.stdout
    )
    assert "DATE_CREATED_UTC" not in fields.stdout


def test_mapping_draft_matches_headers_to_fields(tmp_path: Path) -> None:
    run = cli(
        "mapping", "draft", "sample_data/outlook_contacts.csv", "--object", "contacts", "--sandbox"
    )
    assert run.returncode == 0, run.stderr
    assert (
        "  First Name: FIRST_NAME\n" in run.stdout
        and "  E-mail Address: EMAIL_ADDRESS\n" in run.stdout
    )
    assert "#   Gender: FIELD_NAME\n" in run.stdout


def test_a_reader_that_goes_away_ends_it_quietly_with_141(tmp_path: Path) -> None:
    """`validate … | head -1` printed 'Error: Broken pipe' and exited 74 when the reader had
    gone before the next line."""
    data = tmp_path / "many.csv"
    data.write_text(
        "FIRST_NAME,EMAIL_ADDRESS\n" + "".join(f"A{n},bad{n}\n" for n in range(3000)),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "insightly_etl", "validate", str(data)),
            "--object",
            "contacts",
            "--sandbox",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # gone before the first line (a second of start-up): as `head -0` does
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""
