"""Undo's own journal (load/undo.py): by row, what undo did, so a run stopped by the quota,
Ctrl-C or a crash continues where it stopped and a record is never deleted twice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from insightly_etl.files import utc_now
from insightly_etl.load.states import UndoState

if TYPE_CHECKING:
    from insightly_etl.load.checkpoint.store import Checkpoint


class UndoJournal:
    def __init__(self, store: Checkpoint) -> None:
        self.store = store

    @property
    def db(self) -> Any:
        return self.store.db

    def states(self) -> dict[int, UndoState]:
        return {r: UndoState(s) for r, s in self.db.execute("SELECT row, state FROM undo")}

    def mark(self, row: int, state: UndoState, message: str | None = None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO undo VALUES (?, ?, ?, ?)", (row, state, message, utc_now())
        )

    def summary(self) -> dict[UndoState, int]:
        cur = self.db.execute("SELECT state, COUNT(*) FROM undo GROUP BY state")
        return {UndoState(s): n for s, n in cur}

    def unmark(self, row: int) -> None:
        """A write refused before it was processed (quota, Ctrl-C): as if never tried."""
        self.db.execute("DELETE FROM undo WHERE row=?", (row,))
