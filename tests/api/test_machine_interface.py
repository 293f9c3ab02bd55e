"""The machine interface: --summary-json, status --json, --log-format json and the
INSIGHTLY_ETL_… variables, each checked against the JSON Schema shipped in the package."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from insightly_etl.cli import ENVIRONMENT
from insightly_etl.summary import schema
from tests.api.test_cli import ENV, MAPPING, run, write
from tests.conftest import KEY

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def summary_of(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema("summary"))
    return data


def log_lines(stderr: str) -> list[dict]:
    lines = [json.loads(line) for line in stderr.splitlines()]
    for line in lines:
        jsonschema.validate(line, schema("log-line"))
    return lines


def test_an_export_summary_counts_each_object_and_the_requests(make_sandbox, tmp_path):
    sb = make_sandbox()
    out = tmp_path / "summary.json"
    result = run(
        sb, "export", "contacts", "leads", "--out", str(tmp_path / "x"), "--summary-json", str(out)
    )
    assert result.exit_code == 0, result.output
    s = summary_of(out)
    assert s["command"] == "export" and s["exit_code"] == 0 and s["stop_reason"] is None
    assert s["objects"]["contacts"]["rows"] == len(sb.account.collections["Contacts"].ids)
    assert s["objects"]["leads"]["rows"] == len(sb.account.collections["Leads"].ids)
    # the terminal and the JSON say the same
    assert f"{s['requests']} requests in" in result.stderr
    assert s["requests"] >= 1 + sum(o["requests"] for o in s["objects"].values())
    assert s["quota_remaining"] == 10**9 - s["requests"]
    assert s["files"] == [f"{tmp_path / 'x'}/contacts.parquet", f"{tmp_path / 'x'}/leads.parquet"]


def test_export_counts_say_the_same_everywhere_and_leave_out_what_was_not_counted(
    make_sandbox, tmp_path
):
    """A full export over an earlier one counts what changed by the earlier file's stamps
    (its --summary-json said "changed": 0 for an edited record, then left it out), flat and
    lake alike: the lake's manifest said null, and `report` 0."""
    from insightly_etl.extract.export import read_manifest
    from insightly_etl.report import export_summary

    sb = make_sandbox()
    flat, lake = tmp_path / "flat", tmp_path / "lake"
    for folder, layout in ((flat, "flat"), (lake, "lake")):
        assert (
            run(sb, "export", "contacts", "--out", str(folder), "--layout", layout).exit_code == 0
        )
    sb.account.update("Contacts", {"CONTACT_ID": 2016, "BACKGROUND": "edited"})
    sb.account.delete("Contacts", 2017)
    out = tmp_path / "summary.json"
    again = run(sb, "export", "contacts", "--out", str(flat), "--summary-json", str(out))
    assert "  contacts: 0 new, 1 changed, 1 deleted (in _deleted.parquet" in again.stderr
    counts = summary_of(out)["objects"]["contacts"]
    assert (counts["new"], counts["changed"], counts["deleted"]) == (0, 1, 1)
    assert export_summary(read_manifest(flat)).objects["contacts"]["changed"] == 1
    lake_run = run(
        sb, "export", "contacts", "--out", str(lake), "--layout", "lake", "--summary-json", str(out)
    )
    assert "  contacts: 0 new, 1 changed, 1 deleted" in lake_run.stderr
    assert summary_of(out)["objects"]["contacts"]["changed"] == 1
    assert read_manifest(lake)["objects"]["contacts"]["changed"] == 1
    assert export_summary(read_manifest(lake)).objects["contacts"]["changed"] == 1


def test_a_lake_full_run_after_a_custom_field_changed_sends_every_row_as_changed(
    make_sandbox, tmp_path
):
    """A field deleted in Insightly changes every row's columns, no DATE_UPDATED_UTC: the
    run said 0 changed and wrote no change file, so the feed never saw the column go."""
    from insightly_etl.extract.export import read_manifest

    sb = make_sandbox()
    lake = tmp_path / "lake"
    assert run(sb, "export", "contacts", "--out", str(lake), "--layout", "lake").exit_code == 0
    defs = sb.account.custom_fields["Contacts"]
    sb.account.custom_fields["Contacts"] = [d for d in defs if d["FIELD_NAME"] != "Nickname__c"]
    again = run(sb, "export", "contacts", "--out", str(lake), "--layout", "lake")
    total = len(sb.account.collections["Contacts"].ids)
    assert f"  contacts: 0 new, {total:,} changed, 0 deleted" in again.stderr
    assert read_manifest(lake)["objects"]["contacts"]["changed"] == total
    changes = sorted((lake / "contacts" / "_changes").glob("run=*"))
    assert len(changes) == 1


def test_a_quota_stop_says_when_to_retry(make_sandbox, tmp_path):
    sb = make_sandbox(daily_quota=2)
    out = tmp_path / "summary.json"
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    result = run(sb, "export", "contacts", "--out", str(tmp_path / "x"), "--summary-json", str(out))
    assert result.exit_code == 75, result.output
    s = summary_of(out)
    assert (s["exit_code"], s["stop_reason"]) == (75, "quota")
    assert s["error"].startswith("GET ")
    at = datetime.strptime(s["retry_not_before"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # the first request of the run leaves the rolling 24-hour window a minute after its own
    assert before + timedelta(hours=24) <= at <= before + timedelta(hours=24, minutes=2)


def test_a_budget_stop_may_retry_at_once(make_sandbox, tmp_path):
    out = tmp_path / "summary.json"
    result = run(
        make_sandbox(), "export", "contacts", "--out", str(tmp_path / "x"),
        "--max-requests", "2", "--summary-json", str(out),
    )  # fmt: skip
    assert result.exit_code == 75
    s = summary_of(out)
    assert (s["stop_reason"], s["retry_not_before"], s["requests"]) == ("budget", None, 2)


def test_a_usage_error_found_as_the_run_goes_is_an_error_stop(make_sandbox, tmp_path):
    """`--out` a file: click's usage error (exit 2) left stop_reason null, which the README
    keeps for a run that went to its end."""
    out = tmp_path / "summary.json"
    (tmp_path / "afile").write_text("x")
    result = run(
        make_sandbox(), "--summary-json", str(out), "export", "contacts",
        "--out", str(tmp_path / "afile"),
    )  # fmt: skip
    assert result.exit_code == 2
    s = summary_of(out)
    assert (s["exit_code"], s["stop_reason"]) == (2, "error")
    assert "afile" in s["error"]


def test_a_wrong_key_is_in_the_summary_and_one_json_error_line(make_sandbox, tmp_path):
    out = tmp_path / "summary.json"
    env = {**ENV, "INSIGHTLY_API_KEY": "not-the-key"}
    result = run(
        make_sandbox(), "--log-format", "json", "export", "contacts", "--out",
        str(tmp_path / "x"), "--summary-json", str(out), env=env,
    )  # fmt: skip
    assert result.exit_code == 77
    (line,) = log_lines(result.stderr)
    assert line["level"] == "error" and line["exit_code"] == 77
    assert line["message"].startswith("GET Instance, HTTP 401: the API key was refused")
    assert "not-the-key" not in result.stderr + out.read_text()
    s = summary_of(out)
    assert (s["exit_code"], s["stop_reason"], s["error"]) == (77, "error", line["message"])


def test_a_usage_error_s_json_line_carries_its_exit_code(make_sandbox, tmp_path):
    """As every other error that ends a run does: a reader need not know click's code."""
    result = run(make_sandbox(), "--log-format", "json", "export", "--bogus")
    assert result.exit_code == 2
    usage, hint, error = log_lines(result.stderr)
    assert (usage["level"], hint["level"], "exit_code" in usage) == ("info", "info", False)
    assert (error["level"], error["exit_code"]) == ("error", 2)
    # click's own words, which differ between its versions ('--bogus'. / : --bogus)
    assert error["message"].startswith("No such option") and "--bogus" in error["message"]


@pytest.mark.parametrize(
    ("env", "before", "after", "json_lines"),
    [
        ("json", None, "text", False),  # the environment's json was kept
        ("json", None, None, True),
        (None, "json", "text", False),
        (None, "text", "json", True),
        ("text", "json", None, True),
    ],
)
def test_the_log_format_typed_last_wins_over_the_environment_and_what_came_before(
    make_sandbox, tmp_path, env, before, after, json_lines
):
    typed_before = ["--log-format", before] if before else []
    typed_after = ["--log-format", after] if after else []
    result = run(
        make_sandbox(), *typed_before, "export", "contacts", "--out", str(tmp_path / "x"),
        *typed_after, env={**ENV, **({"INSIGHTLY_ETL_LOG_FORMAT": env} if env else {})},
    )  # fmt: skip
    assert result.exit_code == 0
    first = result.stderr.splitlines()[0]
    if json_lines:
        assert log_lines(result.stderr)[0]["message"].startswith("Exported 1 object type,")
    else:
        assert first.startswith("Exported 1 object type,")


def test_a_refused_option_of_the_group_s_own_carries_its_exit_code_too(tmp_path):
    """Refused while the options before the command parse, before any command runs."""
    other = write(tmp_path, "notes.txt", "not a summary")
    result = run(None, "--log-format", "json", "--summary-json", str(other), "export", "contacts")
    assert result.exit_code == 2
    (error,) = [line for line in log_lines(result.stderr) if line["level"] == "error"]
    assert error["exit_code"] == 2 and "is a file, but not a run summary" in error["message"]


def test_log_records_are_text_again_when_text_is_typed_after_the_command(make_sandbox, tmp_path):
    """The environment's json had put a JSON formatter on the log handlers: a warning the
    library logs (a key file others may read) came out as JSON under --log-format text."""
    key = write(tmp_path, "key.txt", KEY)
    key.chmod(0o644)
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@example.com\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    env = {k: v for k, v in ENV.items() if k != "INSIGHTLY_API_KEY"}
    result = run(
        make_sandbox(), "validate", str(file), "--mapping", str(mapping), "--api-key-file",
        str(key), "--log-format", "text", env={**env, "INSIGHTLY_ETL_LOG_FORMAT": "json"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"Warning: the API key file {key} can be read or changed by other users of this "
        f"machine (mode 644); `chmod 600 {key}` keeps it yours"
    )


def test_an_import_summary_and_status_json(make_sandbox, tmp_path):
    sb = make_sandbox()
    data = write(tmp_path, "people.csv", "Name,Email\nAda,ada@example.com\nBob,not-an-address\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    out = tmp_path / "summary.json"
    result = run(sb, "import", str(data), "--mapping", str(mapping), "--summary-json", str(out))
    assert result.exit_code == 1, result.output
    s = summary_of(out)
    assert s["objects"]["contacts"]["created"] == 1
    assert s["objects"]["contacts"]["rejected"] == 1
    assert s["account"] == "northwind-sandbox"
    assert str(tmp_path / "people.errors.csv") in s["files"]

    status = run(None, "status", "--json", str(tmp_path / "people.csv.checkpoint.sqlite"))
    assert status.exit_code == 0, status.output
    st = json.loads(status.stdout)
    jsonschema.validate(st, schema("status"))
    assert {(r["action"], r["state"]): r["rows"] for r in st["rows"]} == {
        ("create", "done"): 1,
        (None, "rejected"): 1,
    }
    assert st["requests"] == sum(st["requests_by_minute"].values()) == s["requests"]
    assert [r["line"] for r in st["rejects"]] == [3]
    assert st["rejects"][0]["message"].startswith("Email")
    assert (s["objects"]["contacts"]["created_this_run"], result.stdout.count("this run")) == (1, 0)

    data.write_text("Name,Email\nAda,ada@example.com\nBob,bob@example.com\n")  # Bob fixed
    again = run(sb, "import", str(data), "--mapping", str(mapping), "--summary-json", str(out))
    assert again.exit_code == 0, again.output
    counts = summary_of(out)["objects"]["contacts"]
    assert (counts["created"], counts["created_this_run"], counts["updated_this_run"]) == (2, 1, 0)
    assert (
        "people.csv -> contacts: 2 created, 0 updated, 0 unchanged, 0 rejected, 0 duplicate, "
        "0 skipped, 0 failed (this run: 1 created, 0 updated);" in again.stdout
    )


def test_json_logs_are_one_object_per_line_for_every_message(make_sandbox, tmp_path):
    result = run(
        make_sandbox(), "export", "contacts", "--out", str(tmp_path / "x"), "--log-format", "json"
    )
    assert result.exit_code == 0
    lines = log_lines(result.stderr)
    assert lines[0]["message"].startswith("Exported 1 object type,")
    assert {line["level"] for line in lines} == {"info"}


@pytest.mark.parametrize("verbose", ["-v", "-vv"])
def test_json_logs_with_verbose_are_not_wrapped_twice(make_sandbox, tmp_path, verbose):
    """-v's log records were JSON inside the message of another JSON line, all "info"."""
    result = run(
        make_sandbox(), verbose, "--log-format", "json", "export", "contacts",
        "--out", str(tmp_path / "x"),
    )  # fmt: skip
    assert result.exit_code == 0
    lines = log_lines(result.stderr)
    assert not [line for line in lines if line["message"].startswith("{")]
    requests = [line for line in lines if line.get("logger") == "httpx"]
    assert requests and requests[0]["message"].startswith("HTTP Request: GET ")
    if verbose == "-vv":
        assert "debug" in {line["level"] for line in lines}


def test_every_option_reads_an_environment_variable_the_readme_lists():
    assert len(ENVIRONMENT) > 100
    for variable, option in ENVIRONMENT:
        assert variable.startswith("INSIGHTLY_"), option
        assert variable in README, f"{variable} ({option}) is not in the README"


def test_options_from_the_environment(make_sandbox, tmp_path):
    env = {
        **ENV,
        "INSIGHTLY_ETL_EXPORT_FORMAT": "csv",
        "INSIGHTLY_ETL_EXPORT_OUT": str(tmp_path / "x"),
        "INSIGHTLY_ETL_SUMMARY_JSON": str(tmp_path / "s.json"),
        "INSIGHTLY_ETL_LOG_FORMAT": "json",
    }
    result = run(make_sandbox(), "export", "contacts", env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "contacts.csv").is_file()
    assert summary_of(tmp_path / "s.json")["objects"]["contacts"]["rows"] > 0
    assert json.loads(result.stderr.splitlines()[0])["level"] == "info"


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("INSIGHTLY_ETL_EXPORT_FORMAT", "cvs", "'--format' (from INSIGHTLY_ETL_EXPORT_FORMAT)"),
        ("INSIGHTLY_ETL_MAX_REQUESTS", "abc", "'--max-requests' (from INSIGHTLY_ETL_MAX_REQUESTS)"),
    ],
)
def test_a_wrong_value_from_the_environment_names_the_variable(
    make_sandbox, tmp_path, variable, value, said
):
    """The user never typed --format: the message named only the option."""
    env = {**ENV, variable: value}
    result = run(make_sandbox(), "export", "contacts", "--out", str(tmp_path / "x"), env=env)
    assert result.exit_code == 2
    assert f"Error: Invalid value for {said}: " in result.stderr


@pytest.mark.parametrize("value", ["yaml", ""])
def test_a_wrong_log_format_from_the_environment_is_refused(value):
    result = run(None, "status", "x.sqlite", env={**ENV, "INSIGHTLY_ETL_LOG_FORMAT": value or "x"})
    assert result.exit_code == 2
    assert "INSIGHTLY_ETL_LOG_FORMAT" in result.stderr or "--log-format" in result.stderr


def test_the_summary_is_written_whole_even_over_a_planted_symlink(make_sandbox, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    (tmp_path / ".s.json.partial").symlink_to(target)
    result = run(
        make_sandbox(), "export", "contacts", "--out", str(tmp_path / "x"),
        "--summary-json", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert result.exit_code == 0
    assert target.read_text() == "keep me"
    assert summary_of(tmp_path / "s.json")["exit_code"] == 0
    assert KEY not in (tmp_path / "s.json").read_text()


def test_a_validate_summary_counts_valid_and_rejected_rows(make_sandbox, tmp_path):
    data = write(tmp_path, "people.csv", "Name,Email\nAda,ada@example.com\nBob,nope\n")
    out = tmp_path / "s.json"
    result = run(
        make_sandbox(), "validate", str(data), "--mapping", str(write(tmp_path, "m.yaml", MAPPING)),
        "--summary-json", str(out),
    )  # fmt: skip
    assert result.exit_code == 1
    s = summary_of(out)
    assert s["objects"] == {"contacts": {"rows": 2, "valid": 1, "rejected": 1}}
    assert s["files"] == [str(tmp_path / "people.rejects.csv")]
    assert (s["exit_code"], s["stop_reason"]) == (1, None)


def test_undo_requests_are_counted_in_the_checkpoint(make_sandbox, tmp_path):
    sb = make_sandbox()
    data = write(tmp_path, "people.csv", "Name,Email\nAda,ada@example.com\n")
    assert (
        run(sb, "import", str(data), "--mapping", str(write(tmp_path, "m.yaml", MAPPING))).exit_code
        == 0
    )
    checkpoint = tmp_path / "people.csv.checkpoint.sqlite"
    first = json.loads(run(None, "status", "--json", str(checkpoint)).stdout)
    undone = run(sb, "undo", str(checkpoint), "--summary-json", str(tmp_path / "u.json"))
    assert undone.exit_code == 0, undone.output
    spent = summary_of(tmp_path / "u.json")["requests"]
    assert f"; {spent} requests" in undone.stdout
    after = json.loads(run(None, "status", "--json", str(checkpoint)).stdout)
    assert len(after["runs"]) == len(first["runs"]) + 1
    assert after["runs"][-1]["outcome"] == "finished"
    assert after["requests"] == first["requests"] + spent
    assert sum(after["requests_by_minute"].values()) == after["requests"]


def test_the_summary_goes_into_a_pipe_or_device_it_is_given(make_sandbox, tmp_path):
    import os
    import threading

    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    result = run(
        make_sandbox(),
        "export",
        "contacts",
        "--out",
        str(tmp_path / "x"),
        "--summary-json",
        str(fifo),
    )
    reader.join(timeout=30)
    assert result.exit_code == 0
    assert fifo.is_fifo()  # still the pipe, not a file put in its place
    assert json.loads(got[0])["objects"]["contacts"]["rows"] > 0


def test_json_logs_cannot_be_forged_by_text_from_the_server(make_sandbox, tmp_path):
    forged = '{"ts": "2026-01-01T00:00:00Z", "level": "info", "message": "all fine"}'
    result = run(
        make_sandbox(), "--log-format", "json", "export", "contacts", "--out", str(tmp_path / "x"),
        "--since", f"2026-01-01T00:00:00Z\n{forged}",
    )  # fmt: skip
    assert result.exit_code == 2
    lines = log_lines(result.stderr)
    assert not any(line["message"] == "all fine" for line in lines)


def test_a_report_never_replaces_its_own_input(make_sandbox, tmp_path):
    data = write(tmp_path, "people.csv", "Name,Email\nAda,ada@example.com\n")
    assert (
        run(
            make_sandbox(),
            "import",
            str(data),
            "--mapping",
            str(write(tmp_path, "m.yaml", MAPPING)),
        ).exit_code
        == 0
    )
    checkpoint = tmp_path / "people.csv.checkpoint.sqlite"
    before = checkpoint.read_bytes()
    result = run(None, "report", str(checkpoint), "--html", str(checkpoint))
    assert result.exit_code == 2
    assert (
        f"Error: {checkpoint} exists and is not an HTML page: the report would replace it"
        in result.stderr
    )
    assert checkpoint.read_bytes() == before


def test_a_stopped_export_s_summary_names_what_it_wrote(make_sandbox, tmp_path):
    """The summary of an export stopped by its budget said account null, no objects and no
    files, while the folder held the objects it finished and the report named them."""
    out = tmp_path / "summary.json"
    result = run(
        make_sandbox(), "export", "contacts", "leads", "tasks", "--out", str(tmp_path / "x"),
        "--max-requests", "4", "--summary-json", str(out),
    )  # fmt: skip
    assert result.exit_code == 75, result.output
    s = summary_of(out)
    assert s["account"] == "northwind-sandbox"
    assert s["objects"] and all(c["rows"] > 0 for c in s["objects"].values())
    assert s["files"] == [f"{tmp_path / 'x'}/{name}.parquet" for name in s["objects"]]
    assert all(Path(f).exists() for f in s["files"])


def test_an_undo_dry_run_s_summary_says_it_is_one(make_sandbox, tmp_path):
    sb = make_sandbox()
    data = write(tmp_path, "people.csv", "Name,Email\nAda,ada@example.com\n")
    run(sb, "import", str(data), "--mapping", str(write(tmp_path, "m.yaml", MAPPING)))
    checkpoint = tmp_path / "people.csv.checkpoint.sqlite"
    undone = run(
        sb, "undo", str(checkpoint), "--dry-run", "--summary-json", str(tmp_path / "u.json")
    )
    assert undone.exit_code == 0, undone.output
    s = summary_of(tmp_path / "u.json")
    assert (s["dry_run"], s["account"], s["objects"]["contacts"]["deleted"]) == (
        True,
        "northwind-sandbox",
        1,
    )
    preview = run(
        sb, "import", str(data), "--mapping", str(tmp_path / "m.yaml"), "--dry-run",
        "--summary-json", str(tmp_path / "i.json"),
    )  # fmt: skip
    assert summary_of(tmp_path / "i.json")["dry_run"] is True, preview.output


def test_a_summary_that_cannot_be_written_fails_the_run_and_never_replaces_another_file(
    make_sandbox, tmp_path
):
    """Exit 0 with 'Error: cannot write the summary'; and --summary-json pointed at the
    export's manifest replaced it (the next --incremental run was quietly a full one)."""
    sb = make_sandbox()
    x = tmp_path / "x"
    lost = run(sb, "export", "contacts", "--out", str(x), "--summary-json", "/proc/nope/s.json")
    assert lost.exit_code == 74
    assert (
        "Error: cannot write the summary /proc/nope/s.json: No such file or directory"
        in lost.stderr
    )
    manifest = (x / "_manifest.json").read_bytes()
    wrong = run(
        sb, "export", "contacts", "--out", str(x), "--summary-json", str(x / "_manifest.json")
    )
    assert wrong.exit_code == 2
    assert f"{x / '_manifest.json'} is a file, but not a run summary" in wrong.stderr
    assert (x / "_manifest.json").read_bytes() == manifest
    again = run(
        sb, "export", "contacts", "--out", str(x), "--summary-json", str(tmp_path / "s.json")
    )
    assert again.exit_code == 0
    twice = run(
        sb, "export", "contacts", "--out", str(x), "--summary-json", str(tmp_path / "s.json")
    )
    assert twice.exit_code == 0  # a summary's own file is replaced
    # the file the run itself makes there (a first import's checkpoint) is left as it is
    data = write(tmp_path, "s.csv", "Name,Email\nSum,sum@example.com\n")
    own = tmp_path / "s.csv.checkpoint.sqlite"
    made = run(
        sb, "import", str(data), "--mapping", str(write(tmp_path, "m.yaml", MAPPING)),
        "--summary-json", str(own),
    )  # fmt: skip
    assert made.exit_code == 74
    assert f"Error: cannot write the summary {own}: the run wrote another file there" in made.stderr
    assert run(None, "status", str(own)).exit_code == 0  # still a checkpoint


@pytest.mark.parametrize("first", [True, False])
def test_a_summary_is_written_when_an_option_before_it_is_refused(
    tmp_path: Path, first: bool
) -> None:
    """`--out A_FILE --summary-json u.json` ended (exit 2) with no u.json: click refused --out
    before it read --summary-json. The README says it is written however the run ends."""
    (tmp_path / "afile").write_text("")
    out = tmp_path / "u.json"
    options = ["--out", str(tmp_path / "afile")]
    args = (
        [*options, "--summary-json", str(out)] if first else ["--summary-json", str(out), *options]
    )
    result = run(None, "export", "users", *args)
    assert result.exit_code == 2, result.output
    summary = summary_of(out)
    assert (summary["exit_code"], summary["stop_reason"]) == (2, "error")
    assert (
        summary["error"]
        == f"Invalid value for '--out': Directory '{tmp_path / 'afile'}' is a file."
    )


def test_help_writes_no_summary(tmp_path: Path) -> None:
    """--summary-json is read first: `export --summary-json s.json --help` wrote a summary of
    an export that never ran (exit 0), which a script takes for one that did."""
    out = tmp_path / "s.json"
    result = run(None, "export", "--summary-json", str(out), "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout
    assert not out.exists()


def test_a_summary_path_typed_after_the_command_wins_over_the_environment_s(
    tmp_path: Path,
) -> None:
    """INSIGHTLY_ETL_SUMMARY_JSON naming another file, and --summary-json typed after the
    command: the environment's path was refused before the typed one was read (exit 2)."""
    other = tmp_path / "notes.json"
    other.write_text('{"mine": true}')
    mine = tmp_path / "mine.json"
    env = {**ENV, "INSIGHTLY_ETL_SUMMARY_JSON": str(other)}
    (tmp_path / "afile").write_text("")  # refused at once: no request
    result = run(
        None,
        "export",
        "users",
        "--out",
        str(tmp_path / "afile"),
        "--summary-json",
        str(mine),
        env=env,
    )
    assert result.exit_code == 2, result.output
    assert summary_of(mine)["exit_code"] == 2
    assert other.read_text() == '{"mine": true}'
    alone = run(None, "export", "users", "--out", str(tmp_path / "afile"), env=env)
    assert alone.exit_code == 2 and "notes.json is a file, but not a run summary" in alone.stderr
