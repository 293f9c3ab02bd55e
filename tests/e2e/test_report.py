"""The run report, opened in a real browser (Debian's headless Chromium): it renders its charts,
loads nothing from the network, raises no script error, and shows hostile text as text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from insightly_etl.summary import schema
from tests.api.test_cli import MAPPING, run, write

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<img src=x onerror=alert(1)>"


def browser(page: Path, tmp_path: Path, *args: str) -> str:
    assert CHROMIUM, (
        "these tests need Chromium: `apt-get install chromium` (Debian; `make test` and "
        ".ci/run install it when run as root)"
    )
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
            "--virtual-time-budget=10000", *args, page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def checked(page: Path, tmp_path: Path) -> str:
    """The page as the browser left it: charts drawn, no error, a real screenshot."""
    dom = browser(page, tmp_path, "--dump-dom")
    shot = tmp_path / "shot.png"
    browser(page, tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 30_000  # a page of charts, not a blank one
    charts = int(re.search(r'data-charts="(\d+)"', dom).group(1))
    assert charts >= 2
    assert dom.count('class="main-svg"') >= charts  # Plotly drew each into the DOM
    assert "data-errors" not in dom  # window.onerror saw nothing
    return dom


def test_an_import_report_renders_with_its_rejects(make_sandbox, tmp_path):
    data = write(
        tmp_path,
        "people.csv",
        "Name,Email\nAda,ada@example.com\nBob,not-an-address\n"
        f"Eve,{HOSTILE.replace(',', '')}\nZoe,zoe@example.com\n",
    )
    result = run(
        make_sandbox(), "import", str(data), "--mapping", str(write(tmp_path, "m.yaml", MAPPING))
    )
    assert result.exit_code == 1, result.output
    page = tmp_path / "report.html"
    made = run(None, "report", str(tmp_path / "people.csv.checkpoint.sqlite"), "--html", str(page))
    assert made.exit_code == 0, made.output
    text = page.read_text(encoding="utf-8")
    # nothing fetched: no element loads a thing, and the CSP would refuse it if one tried
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", text)
    assert "Content-Security-Policy" in text
    assert HOSTILE not in text  # escaped wherever it is shown
    dom = checked(page, tmp_path)
    assert "Rejects by column and reason" in dom
    # every number is on the page as text too
    assert '<td>Email: … is not a plausible email address</td><td class="n">2</td>' in dom
    assert re.search(r"<td class=\"n\">3</td><td>rejected</td><td>Email: 'not-an-address'", dom)
    assert "<img src=" not in dom
    assert re.search(r'<td class="n">1</td><td>import</td><td>[0-9-]+ [0-9:]+</td>', dom)
    summary = json.loads(
        re.search(r'<script type="application/json" id="summary">(.*?)</script>', text).group(1)
    )
    jsonschema.validate(summary, schema("summary"))
    counts = {k: n for k, n in summary["objects"]["contacts"].items() if n}
    assert counts == {"created": 2, "rejected": 2}  # the words of the import's own summary
    assert (summary["exit_code"], summary["stop_reason"]) == (1, None)
    status = run(None, "status", "--json", str(tmp_path / "people.csv.checkpoint.sqlite"))
    assert summary["requests"] == json.loads(status.stdout)["requests"]


def test_an_export_report_renders(make_sandbox, tmp_path):
    out = tmp_path / "x"
    assert run(make_sandbox(), "export", "contacts", "leads", "--out", str(out)).exit_code == 0
    page = tmp_path / "export.html"
    assert run(None, "report", str(out), "--html", str(page)).exit_code == 0
    dom = checked(page, tmp_path)
    assert (
        "Rows per object" in dom and '<td>contacts</td><td>full</td><td class="n">220</td>' in dom
    )


def test_an_export_stopped_by_the_quota_says_so(make_sandbox, tmp_path):
    out = tmp_path / "x"
    sb = make_sandbox(daily_quota=100)
    assert run(sb, "export", "contacts", "leads", "--out", str(out)).exit_code == 0
    sb.quota.reset()
    sb.quota.limit = 2  # the next run: two requests left today
    assert run(sb, "export", "contacts", "leads", "--out", str(out)).exit_code == 75
    page = tmp_path / "export.html"
    assert run(None, "report", str(out), "--html", str(page)).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert "<dt>stopped early</dt><dd>quota (exit 75)</dd>" in text
    assert "<dt>finished (UTC)</dt><dd>did not finish</dd>" in text
    summary = json.loads(
        re.search(r'<script type="application/json" id="summary">(.*?)</script>', text).group(1)
    )
    jsonschema.validate(summary, schema("summary"))
    assert (summary["exit_code"], summary["stop_reason"], summary["finished_utc"]) == (
        75,
        "quota",
        None,
    )


def test_a_path_that_is_neither_is_refused(tmp_path):
    result = run(None, "report", str(tmp_path), "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert (
        f"Error: {tmp_path}: neither an import's checkpoint file nor an export folder"
        in result.stderr
    )
    assert not (tmp_path / "r.html").exists()


def test_a_folder_of_several_accounts_says_which_to_report(tmp_path):
    (tmp_path / "account=acme").mkdir()
    (tmp_path / "account=acme" / "_manifest.json").write_text('{"version": 1, "objects": {}}')
    result = run(None, "report", str(tmp_path), "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert (
        f"Hint: It holds the exports of several accounts: report one of them, e.g. {tmp_path / 'account=acme'}"
        in result.stderr
    )
    missing = run(None, "report", str(tmp_path / "nowhere"), "--html", str(tmp_path / "r.html"))
    assert (
        missing.exit_code == 2
        and f"Error: {tmp_path / 'nowhere'}: no such file or folder" in missing.stderr
    )


def test_counts_and_minutes_a_hand_put_in_the_files_are_passed_over(make_sandbox, tmp_path):
    """A manifest's `rows: "abc"` ended the report in an internal error; a checkpoint's minute
    key holding a link put it live into the chart's axis."""
    import sqlite3
    from contextlib import closing

    sb = make_sandbox()
    out = tmp_path / "x"
    assert run(sb, "export", "contacts", "leads", "--out", str(out)).exit_code == 0
    manifest = json.loads((out / "_manifest.json").read_text())
    manifest["objects"]["contacts"]["rows"] = "abc"
    manifest["objects"]["leads"]["rows"] = -5
    manifest["objects"]["tasks"] = [1]
    (out / "_manifest.json").write_text(json.dumps(manifest))
    made = run(None, "report", str(out), "--html", str(tmp_path / "e.html"))
    assert made.exit_code == 0, made.output
    text = (tmp_path / "e.html").read_text(encoding="utf-8")
    assert "<td>contacts</td><td>full</td><td class='n'>0</td>" in text
    assert "<td>leads</td><td>full</td><td class='n'>0</td>" in text
    data = write(tmp_path, "people.csv", "Name,Email\nAda,ada@example.com\n")
    assert (
        run(sb, "import", str(data), "--mapping", str(write(tmp_path, "m.yaml", MAPPING))).exit_code
        == 0
    )
    checkpoint = tmp_path / "people.csv.checkpoint.sqlite"
    link = '<a href="https://evil.example/x">click</a>'
    with closing(sqlite3.connect(checkpoint)) as db, db:
        db.execute(
            "UPDATE runs SET sent_minutes=?", (json.dumps({link: 5, "2026-12-04 10:00": 3}),)
        )
    made = run(None, "report", str(checkpoint), "--html", str(tmp_path / "i.html"))
    assert made.exit_code == 0, made.output
    text = (tmp_path / "i.html").read_text(encoding="utf-8")
    assert "evil.example" not in text
    assert "<td>2026-12-04 10:00</td><td class='n'>3</td>" in text
    status = run(None, "status", "--json", str(checkpoint))
    assert json.loads(status.stdout)["requests_by_minute"] == {"2026-12-04 10:00": 3}
