"""`export --table-format delta`: each object a Delta Lake table (through deltalake), a version
per run, incremental runs MERGEd on the record id, the schema following the custom fields."""

from __future__ import annotations

import copy
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from tests.api.test_cli import run
from tests.api.test_export import export
from tests.api.test_live_account import export_while_a_colleague_works


def test_delta_tables_take_a_version_per_run_and_follow_the_custom_fields(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    delta = ["--table-format", "delta", "--out", str(tmp_path)]
    first = run(sb, "export", "contacts", *delta)
    assert first.exit_code == 0, first.output
    table = tmp_path / "contacts"
    contacts = sb.account.collections["Contacts"]
    total = len(contacts.ids)
    assert DeltaTable(str(table)).version() == 0
    assert pl.read_delta(str(table)).height == total

    # a custom field is added, a record is created with it, another is deleted
    definitions = sb.account.custom_fields["Contacts"]
    score = copy.deepcopy(next(d for d in definitions if d["FIELD_TYPE"] == "NUMERIC"))
    score.update(FIELD_NAME="Lake_Score__c", FIELD_LABEL="Lake score", FIELD_ORDER=99)
    definitions.append(score)
    new = sb.account.create(
        "Contacts",
        {
            "FIRST_NAME": "Delta",
            "CUSTOMFIELDS": [{"FIELD_NAME": "Lake_Score__c", "FIELD_VALUE": 7}],
        },
    )
    gone = contacts.ids[0]
    sb.account.delete("Contacts", gone)
    second = run(sb, "export", "contacts", "--incremental", "--detect-deletes", *delta)
    assert second.exit_code == 0, second.output
    assert (
        "Warning: contacts: custom field(s) new in Insightly, a column each: "
        "Lake_Score__c (NUMERIC)\n"
    ) in second.stderr
    dt = DeltaTable(str(table))
    assert dt.version() == 1 and dt.history()[0]["operation"] == "MERGE"
    now = pl.read_delta(str(table))
    assert now.height == total  # one in, one out
    assert now.filter(pl.col("CONTACT_ID") == new["CONTACT_ID"])["Lake_Score__c"].to_list() == [7]
    assert now.filter(pl.col("CONTACT_ID") == gone).height == 0
    # time travel: the first run's table, the deleted record still in it
    before = pl.read_delta(str(table), version=0)
    assert before.height == total and before.filter(pl.col("CONTACT_ID") == gone).height == 1
    assert "Lake_Score__c" not in before.columns

    # a field's type changes (text to number): a MERGE cannot change a column's type, so the
    # run's version rewrites the table, as the Parquet path rewrites its file
    text = next(d for d in definitions if d["FIELD_TYPE"] == "TEXT")
    text["FIELD_TYPE"] = "NUMERIC"
    sb.account.create("Contacts", {"FIRST_NAME": "Typed"})
    third = run(sb, "export", "contacts", "--incremental", *delta)
    assert third.exit_code == 0, third.output
    assert (
        f"Warning: contacts: custom field(s) of another type now, their columns too: "
        f"{text['FIELD_NAME']} (TEXT → NUMERIC)\n"
    ) in third.stderr
    assert (
        "Warning: contacts: the earlier file's values of a field whose type changed do not "
        "read as the new type ("
    ) in third.stderr
    dt = DeltaTable(str(table))
    assert dt.version() == 2
    assert pl.read_delta(str(table)).schema[text["FIELD_NAME"]] == pl.Float64
    assert pl.read_delta(str(table)).height == total + 1


def test_delta_goes_with_parquet_only(make_sandbox, tmp_path: Path) -> None:
    result = run(
        make_sandbox(),
        "export",
        "--table-format",
        "delta",
        "--format",
        "csv",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 2
    assert "Error: --table-format delta writes Parquet: leave out --format" in result.stderr


def test_a_changed_field_type_re_exports_a_parquet_file_in_full(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    assert run(sb, "export", "contacts", "--out", str(tmp_path)).exit_code == 0
    text = next(d for d in sb.account.custom_fields["Contacts"] if d["FIELD_TYPE"] == "TEXT")
    text["FIELD_TYPE"] = "NUMERIC"  # its older text values cannot be carried over as numbers
    result = run(sb, "export", "contacts", "--incremental", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output  # was exit 70: ArrowInvalid
    assert "exported in full this time" in result.stderr
    file = pl.read_parquet(tmp_path / "contacts.parquet")
    assert file.schema[text["FIELD_NAME"]] == pl.Float64
    assert file.height == len(sb.account.collections["Contacts"].ids)


def test_a_damaged_delta_log_is_a_one_line_error(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    delta = ["--table-format", "delta", "--out", str(tmp_path)]
    assert run(sb, "export", "contacts", *delta).exit_code == 0
    (tmp_path / "contacts" / "_delta_log" / "00000000000000000000.json").write_text("garbage\n")
    for extra in ([], ["--incremental"]):
        result = run(sb, "export", "contacts", *extra, *delta)
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 2 and lines[1].startswith("Hint: "), result.stderr
        assert lines[0].startswith(f"Error: {tmp_path / 'contacts'} ")
        assert "Delta table" in lines[0]


def test_delta_tables_need_the_lake_layout(make_sandbox, tmp_path: Path) -> None:
    args = ["--table-format", "delta", "--layout", "flat", "--out", str(tmp_path)]
    result = run(make_sandbox(), "export", *args)
    assert result.exit_code == 2
    assert "Error: --table-format delta makes a folder per table: --layout lake" in result.stderr


@pytest.mark.anyio
async def test_a_delta_version_made_while_a_colleague_deletes_holds_only_live_records(
    make_sandbox, tmp_path: Path
) -> None:
    """The table's new version is made without the records deleted after they were read."""
    sb = make_sandbox(generate={"Contacts": 2000})
    options = {"layout": "lake", "table_format": "delta"}
    await export(sb, tmp_path, "contacts", **options)
    _, colleague = await export_while_a_colleague_works(sb, tmp_path, 40, **options)
    assert colleague.end is not None
    table = DeltaTable(str(tmp_path / "contacts")).to_pyarrow_table()
    assert table.num_rows == len(colleague.end)
    assert set(table["CONTACT_ID"].to_pylist()) == colleague.end
