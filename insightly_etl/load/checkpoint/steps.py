"""The steps' journal (load/steps.py): by row and step, what the step sets (`want`), for which
record, and the same in_flight → done | failed | unknown states as rows. A done step with the
same want for the same record is never sent again; any other is decided again against the
record as Insightly has it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from insightly_etl.files import utc_now
from insightly_etl.load.states import StepAction, StepState

if TYPE_CHECKING:
    from insightly_etl.load.checkpoint.store import Checkpoint


@dataclass(frozen=True)
class StepEntry:
    row: int
    step: str
    want: str
    record_id: int
    action: StepAction | None
    state: StepState
    status: int | None
    message: str | None


_UPSERT = (  # a step decided again (another want, another record) replaces its entry
    " ON CONFLICT (row, step) DO UPDATE SET want=excluded.want, record_id=excluded.record_id,"
    " action=excluded.action, state=excluded.state, status=excluded.status,"
    " message=excluded.message, run=excluded.run, updated_utc=excluded.updated_utc"
)


class StepJournal:
    def __init__(self, store: Checkpoint) -> None:
        self.store = store

    @property
    def db(self) -> Any:
        return self.store.db

    def states(self) -> dict[tuple[int, str], StepEntry]:
        cur = self.db.execute(
            "SELECT row, step, want, record_id, action, state, status, message FROM steps"
        )
        return {
            (r[0], r[1]): StepEntry(
                r[0], r[1], r[2], r[3], StepAction(r[4]) if r[4] else None, StepState(r[5]), *r[6:]
            )
            for r in cur
        }

    def sending(self, row: int, step: str, want: str, record_id: int, action: StepAction) -> None:
        """Committed before the request leaves, like the rows' `sending`."""
        self.db.execute(
            "INSERT INTO steps (row, step, want, record_id, action, state, attempts, run,"
            " updated_utc) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)" + _UPSERT + ", attempts=attempts+1",
            (row, step, want, record_id, action, StepState.IN_FLIGHT, self.store.run, utc_now()),
        )

    def settled(
        self,
        row: int,
        step: str,
        want: str,
        record_id: int,
        *,
        state: StepState,
        action: StepAction,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        """done (`action` sent, or `already` so), failed or unknown."""
        self.db.execute(
            "INSERT INTO steps (row, step, want, record_id, action, state, status, message,"
            " run, updated_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + _UPSERT,
            (row, step, want, record_id, action, state, status, message, self.store.run, utc_now()),
        )

    def put_back(self, row: int, step: str, entry: StepEntry | None) -> None:
        """A request refused before it was processed (quota, Ctrl-C): the step's entry as it
        was before this attempt, or none."""
        if entry is None:
            self.db.execute("DELETE FROM steps WHERE row=? AND step=?", (row, step))
            return
        self.settled(
            row,
            step,
            entry.want,
            entry.record_id,
            state=entry.state,
            action=entry.action or StepAction.ALREADY,
            status=entry.status,
            message=entry.message,
        )

    def counts(self) -> dict[tuple[StepAction | None, StepState], int]:
        cur = self.db.execute("SELECT action, state, COUNT(*) FROM steps GROUP BY action, state")
        return {(StepAction(a) if a else None, StepState(s)): n for a, s, n in cur}
