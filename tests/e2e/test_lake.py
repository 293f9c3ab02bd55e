"""`export --layout lake`: a folder per table, an account partition, and per incremental run an
append-only change file that DuckDB reads with Hive partitioning."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from tests.api.test_cli import run


def test_a_lake_export_keeps_a_folder_per_table_and_a_change_file_per_run(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    lake = ["--layout", "lake", "--account-partition", "--out", str(tmp_path)]
    first = run(sb, "export", "contacts", "organisations", *lake)
    assert first.exit_code == 0, first.output
    part = tmp_path / "account=northwind-sandbox"
    files = sorted(
        p.relative_to(part).as_posix()
        for p in part.rglob("*")
        if p.is_file() and not p.name.startswith(".")  # the run's lock is .insightly-etl.lock
    )
    assert files == [
        "_manifest.json",
        "contacts/part-00000.parquet",
        "links/part-00000.parquet",
        "organisations/part-00000.parquet",
    ]
    contacts = sb.account.collections["Contacts"]
    total = len(contacts.ids)
    gone = contacts.ids[0]
    sb.account.delete("Contacts", gone)
    new = sb.account.create("Contacts", {"FIRST_NAME": "Lakeside"})
    second = run(sb, "export", "contacts", "--incremental", "--detect-deletes", *lake)
    assert second.exit_code == 0, second.output
    changes = sorted((part / "contacts" / "_changes").glob("run=*/part-00000.parquet"))
    assert len(changes) == 1
    assert f"  changes: {changes[0].relative_to(part).as_posix()}" in second.stderr
    assert pq.read_metadata(part / "contacts" / "part-00000.parquet").num_rows == total  # +1 -1
    manifest = json.loads((part / "_manifest.json").read_text())
    assert manifest["objects"]["contacts"]["file"] == "contacts/part-00000.parquet"

    # what a lake reader does: the change files of every run and account, Hive columns included
    rows = duckdb.sql(
        f"""SELECT account, CONTACT_ID, FIRST_NAME, _op, _high_water_mark IS NOT NULL AS marked
            FROM read_parquet('{tmp_path}/*/contacts/_changes/*/*.parquet', hive_partitioning=true)
            ORDER BY _op DESC, CONTACT_ID"""
    ).fetchall()
    assert rows == [
        ("northwind-sandbox", new["CONTACT_ID"], "Lakeside", "upsert", True),
        ("northwind-sandbox", gone, None, "delete", True),
    ]
    # the snapshot reads as one table, the underscore folders left out as Spark leaves them
    count = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/*/contacts/*.parquet')"
    ).fetchall()
    assert count == [(total,)]

    # a run with nothing new writes no change file
    quiet = run(sb, "export", "contacts", "--incremental", *lake)
    assert quiet.exit_code == 0, quiet.output
    assert len(list((part / "contacts" / "_changes").iterdir())) == 1


def test_an_account_partition_needs_the_lake_layout(make_sandbox, tmp_path: Path) -> None:
    result = run(make_sandbox(), "export", "--account-partition", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "Error: --account-partition goes with --layout lake" in result.stderr


def test_a_folder_keeps_the_layout_and_table_format_of_its_first_export(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    assert run(sb, "export", "contacts", "--out", str(tmp_path)).exit_code == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (["--layout", "lake"], ["--table-format", "delta"]):
        mixed = run(sb, "export", "contacts", *args, "--out", str(tmp_path))
        assert mixed.exit_code == 2, mixed.output
        asked = "lake layout with parquet" if args[0] == "--layout" else "lake layout with delta"
        assert (
            f"Error: {tmp_path} holds an export in the flat layout with parquet tables; this run "
            f"asks for the {asked} tables\nHint: Export into another --out" in mixed.stderr
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside it


def test_a_lake_folder_keeps_its_file_format_and_its_account_partitions(
    make_sandbox, tmp_path: Path
) -> None:
    """CSV files were written beside a lake table's Parquet (a reader takes the folder for
    one table), and a flat export beside its account=… partitions."""
    sb = make_sandbox()
    lake = ["contacts", "--layout", "lake", "--out", str(tmp_path / "l")]
    assert run(sb, "export", *lake).exit_code == 0
    csv = run(sb, "export", *lake, "--format", "csv")
    assert csv.exit_code == 2
    assert (
        "holds a lake export of parquet files; this run would put csv files beside them"
        in csv.stderr
    )
    # a lake of CSV files (its manifest from any release says so by its objects' format)
    csv_lake = ["contacts", "--layout", "lake", "--format", "csv", "--out", str(tmp_path / "c")]
    assert run(sb, "export", *csv_lake).exit_code == 0
    assert run(sb, "export", *csv_lake).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "l" / "contacts").iterdir()) == ["part-00000.parquet"]
    parted = ["contacts", "--layout", "lake", "--account-partition", "--out", str(tmp_path / "p")]
    assert run(sb, "export", *parted).exit_code == 0
    flat = run(sb, "export", "contacts", "--out", str(tmp_path / "p"))
    assert flat.exit_code == 2
    assert (
        f"Error: {tmp_path / 'p'} holds a lake export's account partitions "
        "(account=northwind-sandbox/ …); this run would write beside them" in flat.stderr
    )
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["account=northwind-sandbox"]
    # and the other way round: partitions beside a flat export
    assert run(sb, "export", "contacts", "--out", str(tmp_path / "f")).exit_code == 0
    beside = run(sb, "export", *parted[:-1], str(tmp_path / "f"))
    assert beside.exit_code == 2
    assert (
        f"Error: {tmp_path / 'f'} holds an export of its own; account partitions would be "
        "written beside it" in beside.stderr
    )
    assert not list((tmp_path / "f").glob("account=*"))


def test_a_full_run_over_a_lake_snapshot_writes_what_changed_as_a_change_file(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    lake = ["--layout", "lake", "--out", str(tmp_path)]
    assert run(sb, "export", "contacts", *lake).exit_code == 0
    contacts = sb.account.collections["Contacts"]
    gone = contacts.ids[0]
    sb.account.delete("Contacts", gone)
    new = sb.account.create("Contacts", {"FIRST_NAME": "Fullrun"})
    again = run(sb, "export", "contacts", *lake)  # full, not --incremental
    assert again.exit_code == 0, again.output
    changes = list((tmp_path / "contacts" / "_changes").glob("run=*/part-00000.parquet"))
    assert len(changes) == 1
    got = pq.read_table(changes[0], columns=["CONTACT_ID", "_op"]).to_pylist()
    assert sorted(got, key=lambda r: r["_op"]) == [
        {"CONTACT_ID": gone, "_op": "delete"},
        {"CONTACT_ID": new["CONTACT_ID"], "_op": "upsert"},
    ]
    assert run(sb, "export", "contacts", *lake).exit_code == 0  # nothing changed: no new file
    assert len(list((tmp_path / "contacts" / "_changes").iterdir())) == 1


def test_an_export_removes_only_its_own_partial_files(make_sandbox, tmp_path: Path) -> None:
    theirs = [tmp_path / "dl" / ".movie.mkv.partial", tmp_path / ".git" / ".index.partial"]
    for path in theirs:
        path.parent.mkdir(parents=True)
        path.write_text("someone else's")
    ours = tmp_path / ".contacts.parquet.partial"  # a killed run's
    ours.write_text("half")
    result = run(make_sandbox(), "export", "contacts", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert all(p.read_text() == "someone else's" for p in theirs) and not ours.exists()


def test_a_high_water_mark_from_the_future_is_repaired_by_a_full_run(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    assert run(sb, "export", "contacts", "--out", str(tmp_path)).exit_code == 0
    manifest = json.loads((tmp_path / "_manifest.json").read_text())
    manifest["objects"]["contacts"]["high_water_mark"] = "2099-01-01 00:00:00"
    (tmp_path / "_manifest.json").write_text(json.dumps(manifest))
    new = sb.account.create("Contacts", {"FIRST_NAME": "Tomorrow"})
    result = run(sb, "export", "contacts", "--incremental", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (
        "Warning: contacts: the manifest's high-water mark '2099-01-01 00:00:00' is later than "
        "the server's clock; exported in full this time" in result.stderr
    )
    ids = pq.read_table(tmp_path / "contacts.parquet", columns=["CONTACT_ID"])["CONTACT_ID"]
    assert new["CONTACT_ID"] in ids.to_pylist()
    mark = json.loads((tmp_path / "_manifest.json").read_text())["objects"]["contacts"]
    assert not mark["high_water_mark"].startswith("2099")


def test_two_exports_into_one_folder_do_not_run_at_once(make_sandbox, tmp_path: Path) -> None:
    import os

    from insightly_etl.lock import RunLock

    held = RunLock(tmp_path, path=tmp_path / ".insightly-etl.lock")  # a run still going
    try:
        second = run(make_sandbox(), "export", "contacts", "--out", str(tmp_path))
    finally:
        held.release()
    assert second.exit_code == 75, second.output
    assert f"Error: {tmp_path} is in use by process {os.getpid()} since " in second.stderr
    assert "Hint: Two exports into one folder would write the same files" in second.stderr
    assert not (tmp_path / "contacts.parquet").exists()
    assert run(make_sandbox(), "export", "contacts", "--out", str(tmp_path)).exit_code == 0


def test_lists_read_in_full_write_a_change_only_when_a_row_changed(
    make_sandbox, tmp_path: Path
) -> None:
    """Pipelines and countries have no DATE_UPDATED_UTC: every incremental run read them in
    full and wrote all their rows as a change file ('a run with no change writes none'), and a
    Delta table a new version each time."""
    from deltalake import DeltaTable

    sb = make_sandbox()
    lake = ["pipelines", "countries", "--layout", "lake", "--out", str(tmp_path / "p")]
    delta = [*lake[:-1], str(tmp_path / "d"), "--table-format", "delta"]
    for args in (lake, delta):
        assert run(sb, "export", *args).exit_code == 0
        again = run(sb, "export", *args, "--incremental")
        assert again.exit_code == 0, again.output
    for name in ("pipelines", "countries"):
        assert not (tmp_path / "p" / name / "_changes").exists()
        assert DeltaTable(str(tmp_path / "d" / name)).version() == 0
    pipelines = sb.account.collections["Pipelines"]
    pipelines.put({**pipelines.records[pipelines.ids[0]], "PIPELINE_NAME": "Renamed"})
    again = run(sb, "export", *lake, "--incremental")
    assert again.exit_code == 0, again.output
    assert "pipelines: 0 new, 1 changed, 0 deleted" in again.stderr
    assert run(sb, "export", *delta, "--incremental").exit_code == 0
    changes = list((tmp_path / "p" / "pipelines" / "_changes").glob("run=*/part-00000.parquet"))
    assert len(changes) == 1
    assert pq.read_table(changes[0], columns=["PIPELINE_NAME", "_op"]).to_pylist() == [
        {"PIPELINE_NAME": "Renamed", "_op": "upsert"}
    ]
    assert DeltaTable(str(tmp_path / "d" / "pipelines")).version() == 1
    assert not (tmp_path / "p" / "countries" / "_changes").exists()


def test_change_files_and_partitions_are_never_written_through_a_link(
    make_sandbox, tmp_path: Path
) -> None:
    """A `_changes` folder, or an account partition, replaced by a symbolic link: the change
    files (or the whole partition: manifest, lock, tables) were written where it led."""
    sb = make_sandbox()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "lake"
    lake = ["contacts", "--layout", "lake", "--out", str(out)]
    assert run(sb, "export", *lake).exit_code == 0
    (out / "contacts" / "_changes").symlink_to(elsewhere)
    sb.account.create("Contacts", {"FIRST_NAME": "Linked"})
    result = run(sb, "export", *lake, "--incremental")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2] == (
        f"Error: {out / 'contacts' / '_changes'} is a symbolic link; the export's own folders "
        "are never written through one"
    )
    parted = tmp_path / "parted"
    parted.mkdir()
    (parted / "account=northwind-sandbox").symlink_to(elsewhere)
    result = run(
        sb, "export", "contacts", "--layout", "lake", "--account-partition", "--out", str(parted)
    )
    assert result.exit_code == 2, result.output
    assert "account=northwind-sandbox is a symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []
