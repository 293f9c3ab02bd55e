"""The rows' journal keeps no row in memory: each way a run asks it (every row's state in
brief, a few rows' entries, the rows of some states as columns, the written rows) says what a
full read of the file says, after every kind of change."""

from pathlib import Path

import pandas as pd
import pytest

from insightly_etl.load.checkpoint import Checkpoint
from insightly_etl.load.states import Action, RowState


def test_every_view_of_the_journal_is_what_the_file_holds_after_every_change(
    tmp_path: Path,
) -> None:
    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        cp.rows.register([(0, 2, "a"), (1, 3, "b"), (2, 4, "c"), (3, 5, "d")])
        cp.start_run()
        rows = cp.rows

        def same() -> None:
            whole = rows.states()
            assert rows.of([3, 1, 0, 2, 9]) == whole  # row 9 is not the journal's
            assert list(rows.brief()) == [
                (e.row, e.state, e.status, e.record_id) for e in whole.values()
            ]
            listed = rows.listed(RowState, not_applied=True)
            assert listed["row"].tolist() == list(whole)
            assert listed["line"].tolist() == [e.line for e in whole.values()]
            assert listed["state"].tolist() == [e.state for e in whole.values()]
            assert [None if pd.isna(v) else v for v in listed["record_id"]] == [
                e.record_id for e in whole.values()
            ]
            assert rows.written() == [
                (e.row, e.record_id, e.created)
                for e in whole.values()
                if e.state == RowState.DONE and e.record_id is not None
            ]
            assert rows.lines() == {e.row: e.line for e in whole.values()}

        same()
        rows.mark([3], RowState.REJECTED, message="bad e-mail")
        same()
        rows.mark([0, 1, 2], RowState.PLANNED, action=Action.CREATE)
        same()
        rows.sending(0, Action.CREATE, {"FIRST_NAME": "Ada"}, "2026-12-03 10:00:00", None)
        same()
        rows.done(0, Action.CREATE, 101, not_applied="not applied: TITLE", stamp="2026-12-03")
        same()
        rows.sending(1, Action.UPDATE, {"CONTACT_ID": 7, "TITLE": "x"}, "2026-12-03", 7)
        same()
        rows.unknown(1, "the write was sent but no answer came back")
        same()
        rows.done(1, Action.UPDATE, 7, {"TITLE": "old"}, {"TITLE": "x"})
        same()
        rows.sending(2, Action.CREATE, {}, "2026-12-03", None)
        rows.failed(2, 400, "Invalid field")
        same()
        whole = rows.states()
        assert whole[0].created and whole[0].not_applied
        assert (whole[1].attempts, whole[1].created) == (1, False)
        assert (whole[2].state, whole[2].status, whole[2].payload) == ("failed", 400, {})
        assert rows.written() == [(0, 101, True), (1, 7, False)]
        failed = rows.listed([RowState.FAILED, RowState.REJECTED])
        assert failed[["line", "state", "status", "message"]].astype(object).values.tolist() == [
            [4, "failed", 400, "Invalid field"],
            [5, "rejected", pd.NA, "bad e-mail"],
        ]
        assert rows.listed([RowState.DONE], not_applied=True)["not_applied"].tolist() == [
            True,
            False,
        ]
        assert rows.listed([RowState.SKIPPED]).empty
    finally:
        cp.close()


def test_a_snapshot_does_not_change_after_it_was_taken(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        cp.rows.register([(0, 2, "a")])
        before = cp.rows.states()
        cp.rows.mark([0], RowState.SKIPPED, action=Action.SKIP)
        assert before[0].state == RowState.PLANNED
        assert cp.rows.states()[0].state == RowState.SKIPPED
    finally:
        cp.close()


def test_nothing_is_left_beside_a_closed_checkpoint_nor_made_by_looking_at_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite"
    cp = Checkpoint(path)
    cp.rows.register([(0, 2, "a")])
    cp.rows.mark([0], RowState.SKIPPED, action=Action.SKIP)
    assert {p.name for p in tmp_path.iterdir()} >= {"c.sqlite-wal", "c.sqlite-shm"}  # running
    cp.close()
    look = Checkpoint.read_only(path)  # `status`, `report`
    assert look.rows.states()[0].state == RowState.SKIPPED
    look.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sqlite", "c.sqlite.lock"]
    again = Checkpoint(path)  # the next run is in WAL mode again
    assert again.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    again.close()


def test_questions_across_blocks_give_what_one_block_gives(tmp_path: Path, monkeypatch) -> None:
    """Rows registered, named (`of`) and read into columns (`listed`) a block at a time, with
    blocks of two rows: a block whose rows have no record id beside one whose rows have."""
    import insightly_etl.load.checkpoint.rows as journal

    monkeypatch.setattr(journal, "_BLOCK", 2)
    monkeypatch.setattr(journal, "_SQL_CHUNK", 2)
    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        cp.rows.register((r, r + 2, f"d{r}") for r in range(7))
        cp.db.execute("UPDATE rows SET digest=NULL WHERE row=5")  # as an earlier version left it
        cp.rows.register((r, r + 2, f"d{r}") for r in range(7))
        digests = [d for (d,) in cp.db.execute("SELECT digest FROM rows ORDER BY row")]
        assert digests == [f"d{r}" for r in range(7)]
        cp.start_run()
        rows = cp.rows
        rows.mark([0, 1, 4, 5, 6], RowState.SKIPPED, action=Action.SKIP, message="no")
        rows.done(4, Action.UPDATE, 40)
        rows.done(6, Action.CREATE, 60)
        assert list(rows.of(range(9))) == list(range(7))
        skipped_or_done = rows.listed([RowState.SKIPPED, RowState.DONE])
        assert skipped_or_done["row"].tolist() == [0, 1, 4, 5, 6]
        assert skipped_or_done["record_id"].tolist() == [pd.NA, pd.NA, 40, pd.NA, 60]
        assert str(skipped_or_done["record_id"].dtype) == "Int64"
        assert skipped_or_done["message"].tolist() == ["no", "no", "", "no", ""]
        assert rows.written() == [(4, 40, False), (6, 60, True)]
    finally:
        cp.close()


def test_only_the_columns_asked_are_read(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        cp.rows.register([(0, 2, "a"), (1, 3, "b")])
        left = cp.rows.listed([RowState.PLANNED], ["row", "line"])
        assert left.to_dict("list") == {"row": [0, 1], "line": [2, 3]}
        empty = cp.rows.listed([RowState.DONE], ["line", "action", "record_id"])
        assert (list(empty.columns), len(empty)) == (["line", "action", "record_id"], 0)
    finally:
        cp.close()


def test_rows_marked_each_with_its_own_message(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        cp.rows.register([(0, 2, "a"), (1, 3, "b"), (2, 4, "c")])
        cp.rows.mark_each([(0, "Email: 'x' is no e-mail"), (2, None)], RowState.REJECTED)
        assert [(e.state, e.message) for e in cp.rows.states().values()] == [
            ("rejected", "Email: 'x' is no e-mail"),
            ("planned", None),
            ("rejected", None),
        ]
    finally:
        cp.close()


def test_a_full_disk_is_said_as_sqlite_says_it_never_hidden_by_what_follows(
    tmp_path: Path,
) -> None:
    """A full disk (SQLite's own page limit stands in for it) rolls the transaction back
    itself: the ROLLBACK after it found none and said so, instead of why. And pandas' reading
    of the journal names SQLite's error as SQLite's (the CLI says where to free space)."""
    import sqlite3

    import pytest

    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        pages = cp.db.execute("PRAGMA page_count").fetchone()[0]
        cp.db.execute(f"PRAGMA max_page_count = {pages + 2}")
        many = ((r, r + 2, f"{r:0200d}") for r in range(2000))
        with pytest.raises(sqlite3.OperationalError, match=r"^database or disk is full$"):
            cp.rows.register(many)
        assert not cp.db.in_transaction and cp.rows.states() == {}

        cp.db.execute("ALTER TABLE rows RENAME TO gone")  # a reading that fails in SQLite
        with pytest.raises(sqlite3.OperationalError, match=r"^no such table: rows$"):
            cp.rows.listed(RowState, not_applied=True)
    finally:
        cp.close()


def test_rows_of_some_states_are_read_in_order_never_sorted_in_a_temporary_file(
    tmp_path: Path,
) -> None:
    """A sort of many rows is a temporary file in TMPDIR, which a large import fills with
    its values: the results' reads scan the table in its order instead."""
    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        cp.rows.register([(r, r + 2, f"d{r}") for r in range(6)])
        cp.start_run()
        cp.rows.mark_each([(1, "no"), (4, "no")], RowState.REJECTED)
        asked: list[str] = []
        cp.db.set_trace_callback(asked.append)
        assert cp.rows.listed([RowState.REJECTED])["row"].tolist() == [1, 4]
        assert cp.rows.written() == []
        assert [line for line, _, _ in cp.rows.refused()] == [3, 6]
        cp.db.set_trace_callback(None)
        selects = [q for q in asked if q.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 3
        plans = [cp.db.execute(f"EXPLAIN QUERY PLAN {q}").fetchall() for q in selects]
        assert [[step[3] for step in plan] for plan in plans] == [["SCAN rows"]] * 3
    finally:
        cp.close()


def test_a_run_s_checkpoint_sorts_in_memory_not_in_the_temporary_folder(tmp_path: Path) -> None:
    """SQLite's temporary files go to TMPDIR, which an import of a large file fills with its
    values: a run's counts and indexes are made in memory (2: MEMORY). SQLite reads TMPDIR
    once per process, so a full one cannot be staged here; the CLI was tried on a tmpfs just
    large enough for the values (a run that had sent its writes failed counting them)."""
    cp = Checkpoint(tmp_path / "c.sqlite")
    dry = Checkpoint.scratch(tmp_path / "c.sqlite")
    try:
        for db in (cp.db, dry.db):
            assert db.execute("PRAGMA temp_store").fetchone() == (2,)
    finally:
        dry.close()
        cp.close()


def test_a_dry_run_sweeps_the_copies_of_dry_runs_killed_before_they_could(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run killed with -9 left its copy of the checkpoint in TMPDIR (200 MB for a
    million rows). The next dry run removes the copies whose lock no process holds, older
    than a minute; a live one's, a young one's, a link and a folder without a lock stay."""
    import os
    import tempfile

    from insightly_etl.lock import RunLock

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = Checkpoint.scratch(tmp_path / "c.sqlite")
    assert live.scratch_dir is not None and live.scratch_lock is not None

    def copy(name: str, *, locked: bool = True, age: float = 3600) -> Path:
        folder = tmp_path / f"insightly-etl-dry-run-{name}"
        folder.mkdir()
        (folder / "checkpoint.sqlite").write_bytes(b"rows")
        if locked:
            RunLock(folder / "checkpoint.sqlite").release()  # its run ended: no one holds it
        os.utime(folder, (os.stat(folder).st_atime - age, os.stat(folder).st_mtime - age))
        return folder

    killed, young, unlocked = copy("killed"), copy("young", age=0), copy("old", locked=False)
    os.utime(live.scratch_dir, (0, 0))  # old, but its run holds its lock
    (tmp_path / "insightly-etl-dry-run-link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    try:
        Checkpoint.scratch(tmp_path / "c.sqlite").close()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [
                live.scratch_dir.name,
                young.name,
                unlocked.name,
                "insightly-etl-dry-run-link",
                "elsewhere",
            ]
        )
        assert not killed.exists() and (live.scratch_dir / "checkpoint.sqlite").is_file()
    finally:
        own = live.scratch_dir
        live.close()
    assert not own.exists()  # a dry run that ends removes its own
