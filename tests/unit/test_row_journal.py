"""The rows' journal keeps its entries in memory beside the file: after every kind of change,
what a run sees in memory is exactly what a fresh read of the file gives."""

from pathlib import Path

from insightly_etl.load.checkpoint import Checkpoint
from insightly_etl.load.states import Action, RowState


def test_entries_in_memory_are_what_the_file_holds_after_every_change(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "c.sqlite")
    try:
        cp.rows.register([(0, 2, "a"), (1, 3, "b"), (2, 4, "c"), (3, 5, "d")])
        cp.start_run()
        rows = cp.rows

        def same() -> None:
            assert rows.states() == rows._read()

        rows.states()  # read once: from now on changes go to memory and file alike
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
        assert rows.states()[0].created and rows.states()[0].not_applied
        assert (rows.states()[1].attempts, rows.states()[1].created) == (1, False)
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
