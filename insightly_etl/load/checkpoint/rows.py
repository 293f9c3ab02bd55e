"""The rows' journal: one entry per row of the file, committed before its request leaves and
again when the answer comes, so a run that dies loses nothing (at worst a row is `in_flight`,
reconciled before anything is re-sent). Updates keep the before-image of every field they
change, so an import can be undone."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from insightly_etl.config import redact
from insightly_etl.files import utc_now
from insightly_etl.load.states import UNSETTLED, Action, LastWrite, RowState
from insightly_etl.moments import iso_instant

if TYPE_CHECKING:
    from insightly_etl.load.checkpoint.store import Checkpoint


@dataclass(frozen=True, slots=True)
class RowEntry:
    row: int
    line: int
    action: Action | None
    state: RowState
    record_id: int | None
    payload: dict[str, Any] | None
    sent_at: str | None
    status: int | None
    message: str | None
    attempts: int
    not_applied: bool = False  # done, but the answer lacked a value sent (`message` says which)
    created: bool = False  # an import created its record (whatever later runs did to it)


@dataclass(frozen=True)
class FieldChange:
    record_id: int
    field: str
    before: Any
    written: Any


@dataclass(frozen=True)
class CreatedRow:
    row: int
    line: int
    record_id: int
    payload: dict[str, Any] | None  # the last body sent
    stamp: str | None  # DATE_UPDATED_UTC as our last write left the record


@dataclass(frozen=True)
class MovedRecord(CreatedRow):
    """A record a row wrote before it took another (an edited match key): its undo journal
    key is `row` (negative); created ones are deleted, updated ones get `changes` back."""

    created: bool
    changes: tuple[FieldChange, ...]


def _folded(cur: Iterable[tuple[int, Any, str, Any, Any]]) -> dict[int, list[FieldChange]]:
    """Before-images by row, in field and run order, as one change per field: the value
    before the first run that changed it, and the value the last one wrote."""
    seen: dict[tuple[int, str], FieldChange] = {}
    for row, rid, name, value, written in cur:
        before = json.loads(value) if value is not None else None
        after = json.loads(written) if written is not None else None
        earlier = seen.get((row, name))
        seen[(row, name)] = FieldChange(
            _record(rid), name, earlier.before if earlier else before, after
        )
    out: dict[int, list[FieldChange]] = {}
    for (row, _), change in seen.items():
        out.setdefault(row, []).append(change)
    return out


def _json(value: Any) -> str:
    return redact(json.dumps(value, ensure_ascii=False))


def _record(value: Any) -> int:
    """A record id as this journal writes them; anything else is a damaged checkpoint."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"record id {value!r}")


def _body(text: Any) -> dict[str, Any] | None:
    """A body sent, as this journal writes them (a JSON object), or none."""
    if text is None:
        return None
    body = json.loads(text)
    if not isinstance(body, dict):
        raise TypeError(f"a body that is a {type(body).__name__}, not an object")
    return body


_UNSETTLED = ", ".join(f"'{s}'" for s in UNSETTLED)


_LISTED = ["row", "line", "action", "state", "record_id", "status", "message", "not_applied"]
_SQL_CHUNK = 500  # rows named in one `row IN (...)`: far below SQLite's bound of parameters
_BLOCK = 50_000  # rows registered, or read into columns, at a time


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """listed()'s columns as their types: ids and statuses Int64, words "" for none (NaN
    under pandas 3), not_applied bool."""
    for name in {"record_id", "status"} & set(frame.columns):
        frame[name] = frame[name].astype("Int64")
    for name in {"action", "state", "message"} & set(frame.columns):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), "")
    if "not_applied" in frame.columns:
        frame["not_applied"] = frame["not_applied"].astype(bool)
    return frame


class Brief(NamedTuple):
    """What a run decides a row's work by (RowJournal.brief)."""

    row: int
    state: RowState
    status: int | None  # the HTTP status of its last failure, if any
    record_id: int | None


class Written(NamedTuple):
    """A done row that has its record (RowJournal.written)."""

    row: int
    record_id: int
    created: bool  # by an import (whatever later runs did to it): `update: never|fill` steps
    # do not hold it back


_ENTRY = (
    "row, line, action, state, record_id, payload, sent_at, status, message, attempts,"
    " not_applied, created"
)


def _entry(r: tuple[Any, ...]) -> RowEntry:
    return RowEntry(
        r[0],
        r[1],
        Action(r[2]) if r[2] else None,
        RowState(r[3]),
        r[4],
        # a done row's body stays in the file only (undo reads it there): read back, it would
        # be 2.4 KB a row
        json.loads(r[5]) if r[5] and r[3] != RowState.DONE else None,
        r[6],
        r[7],
        r[8],
        r[9],
        bool(r[10]),
        bool(r[11]),
    )


class RowJournal:
    """Every change is committed to SQLite, and every question asked of it: the journal keeps
    no row in memory (a million rows' entries were 200 MB, held through the run and copied
    when asked). A run reads what it needs as it goes: `brief` streams every row's state,
    `of` the entries of a few rows, the results files their own columns.

    Rows of some states are read in the table's own order (`+state`: not through the state
    index), never sorted: a sort of many rows is a temporary file in TMPDIR, which a large
    import fills with its values (load/spill.py); with no room left there, a run that had
    sent its writes failed writing its results. A scan of a million rows takes a second."""

    def __init__(self, store: Checkpoint) -> None:
        self.store = store
        self._claimed: set[int] | None = None

    def reload(self) -> None:
        """The rows were changed behind the journal's back (rerun.py): the records done rows
        hold are asked of the file again."""
        self._claimed = None

    def claimed(self) -> set[int]:
        """The records done rows hold: a lost create's record is none of these."""
        if self._claimed is None:
            cur = self.db.execute(
                "SELECT record_id FROM rows WHERE state=? AND record_id IS NOT NULL",
                (RowState.DONE,),
            )
            self._claimed = {r[0] for r in cur}
        return self._claimed

    @property
    def db(self) -> Any:
        return self.store.db

    def register(self, rows: Iterable[tuple[int, int, str]]) -> None:
        """Every row of the file, once (row position, line, content digest), in one
        transaction, a block of rows at a time (not a million tuples at once)."""
        self.reload()
        now = utc_now()
        given = iter(rows)
        with self.store.transaction() as db:
            while block := list(islice(given, _BLOCK)):
                db.executemany(
                    "INSERT OR IGNORE INTO rows (row, line, state, digest, updated_utc)"
                    " VALUES (?, ?, ?, ?, ?)",
                    ((r, line, RowState.PLANNED, digest, now) for r, line, digest in block),
                )
                # a checkpoint of an earlier version: its rows get their digests now
                db.executemany(
                    "UPDATE rows SET digest=? WHERE row=? AND digest IS NULL",
                    ((digest, r) for r, _, digest in block),
                )

    def states(self) -> dict[int, RowEntry]:
        """Every row's entry, as the file has it now: to look at a small checkpoint (tests).
        Nothing in a run asks it: a million entries are 200 MB; runs ask `brief` and `of`."""
        cur = self.db.execute(f"SELECT {_ENTRY} FROM rows")
        return {r[0]: _entry(r) for r in cur}

    def of(self, rows: Iterable[int]) -> dict[int, RowEntry]:
        """The entries of these rows (a row the journal does not have is not in the answer)."""
        wanted = sorted(set(rows))
        out: dict[int, RowEntry] = {}
        for first in range(0, len(wanted), _SQL_CHUNK):
            part = wanted[first : first + _SQL_CHUNK]
            marks = ", ".join("?" * len(part))
            cur = self.db.execute(
                f"SELECT {_ENTRY} FROM rows WHERE row IN ({marks}) ORDER BY row", part
            )
            out.update((r[0], _entry(r)) for r in cur)
        return out

    def brief(self) -> Iterator[Brief]:
        """Every row's Brief, by row, read as it is iterated: what a run decides its work by
        (iterate it to the end before writing again)."""
        cur = self.db.execute("SELECT row, state, status, record_id FROM rows ORDER BY row")
        return (Brief(r, RowState(s), status, rid) for r, s, status, rid in cur)

    def written(self) -> list[Written]:
        """Every done row that has its record, by row: the rows whose steps may follow."""
        cur = self.db.execute(
            "SELECT row, record_id, created FROM rows WHERE +state=? AND record_id IS NOT NULL"
            " ORDER BY row",  # +state: in order, unsorted (class doc)
            (RowState.DONE,),
        )
        return [Written(r, rid, bool(created)) for r, rid, created in cur]

    def listed(
        self,
        states: Iterable[RowState],
        columns: Sequence[str] = _LISTED,
        *,
        not_applied: bool = False,
    ) -> pd.DataFrame:
        """The rows in `states` (with `not_applied`, also the done rows whose answer lacked a
        value sent), by row, as a frame of `columns` (of row, line, action, state, record_id,
        status, message, not_applied): read a block at a time, only the columns asked (a
        million rows' three words each were 160 MB of Python strings)."""
        unknown = set(columns) - set(_LISTED)
        assert not unknown, f"no such column of the rows: {unknown}"
        wanted: list[str] = [str(s) for s in states]
        where = f"+state IN ({', '.join('?' * len(wanted))})"  # in order, unsorted (class doc)
        if not_applied:
            where = f"({where} OR (state=? AND not_applied=1))"
            wanted.append(str(RowState.DONE))
        try:
            parts = pd.read_sql_query(
                f"SELECT {', '.join(columns)} FROM rows WHERE {where} ORDER BY row",
                self.db,
                params=wanted,
                chunksize=_BLOCK,
            )
            chunks = [_typed(p) for p in parts if not p.empty]  # typed alike before joined
        except pd.errors.DatabaseError as exc:  # pandas' word for SQLite's: SQLite's is said
            if isinstance(exc.__cause__, sqlite3.Error):  # (a full disk, and where)
                raise exc.__cause__ from None
            raise
        return (
            pd.concat(chunks, ignore_index=True)
            if chunks
            else _typed(pd.DataFrame(columns=columns))
        )

    def lines(self) -> dict[int, int]:
        """Every row's line in the file."""
        return dict(self.db.execute("SELECT row, line FROM rows"))

    def mark(
        self,
        rows: Iterable[int],
        state: RowState,
        *,
        action: Action | None = None,
        message: str | None = None,
    ) -> None:
        """These rows in `state`, one `message` for all, in one transaction."""
        self.mark_each(((r, message) for r in rows), state, action=action)

    def mark_each(
        self,
        messages: Iterable[tuple[int, str | None]],
        state: RowState,
        *,
        action: Action | None = None,
    ) -> None:
        """(row, its own message) in `state`, in one transaction (a transaction a row took
        4 s for 100,000 rejected rows)."""
        now = utc_now()
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE rows SET state=?, action=COALESCE(?, action), message=?, updated_utc=?,"
                " run=? WHERE row=?",
                ((state, action, message, now, self.store.run, r) for r, message in messages),
            )

    def sending(
        self, row: int, action: Action, payload: dict[str, Any], sent_at: str, record_id: int | None
    ) -> None:
        """Committed before the request leaves: from now on the outcome may be unknown."""
        body = _json(payload)
        with self.store.transaction() as db:
            # a create makes another record; an update may be of another (an edited key)
            self._move_on(db, row, None if action == Action.CREATE else record_id)
            if action != Action.CREATE and record_id is not None:
                self._take_back(db, row, record_id)
            db.execute(
                "UPDATE rows SET state=?, action=?, payload=?, sent_at=?,"
                " record_id=COALESCE(?, record_id), attempts=attempts+1, updated_utc=?, run=?,"
                " status=NULL, message=NULL, not_applied=0 WHERE row=?",
                (
                    RowState.IN_FLIGHT,
                    action,
                    body,
                    sent_at,
                    record_id,
                    utc_now(),
                    self.store.run,
                    row,
                ),
            )

    def _move_on(self, db: Any, row: int, record_id: int | None) -> None:
        """The row takes another record than the one it wrote before (a create makes a new
        one; an update names `record_id`): that one is set aside in `moved_records` with
        what undo needs of it (created: to delete it; updated: its fields' values before), so
        undo reverses it as itself and never puts it onto the record the row took instead."""
        old = db.execute(
            "SELECT line, record_id, created, payload, stamp FROM rows"
            " WHERE row=? AND record_id IS NOT NULL AND record_id IS NOT ?",
            (row, record_id),
        ).fetchone()
        if old is None:
            return
        line, rid, created, payload, stamp = old
        changes = (
            [] if created else [[c.field, c.before, c.written] for c in self._changes(row, rid)]
        )
        if created or changes:
            db.execute(
                "INSERT INTO moved_records (line, record_id, created, payload, stamp, changes,"
                " run) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (line, rid, created, payload, stamp, _json(changes), self.store.run or 0),
            )
        db.execute("DELETE FROM before_images WHERE row=? AND record_id=?", (row, rid))
        db.execute(
            "UPDATE rows SET created=0, record_id=NULL, payload=NULL, stamp=NULL WHERE row=?",
            (row,),
        )

    def _take_back(self, db: Any, row: int, record_id: int) -> None:
        """The row takes a record a row set aside before (its key edited back): it is the
        row's again, as it was — created (undo deletes it, with the body and stamp it had) or
        updated (its fields' values before come back as the first before-images)."""
        for key, was_created, payload, stamp, changes in db.execute(
            "SELECT id, created, payload, stamp, changes FROM moved_records WHERE record_id=?",
            (record_id,),
        ).fetchall():
            if was_created:
                db.execute(
                    "UPDATE rows SET created=1, payload=COALESCE(payload, ?),"
                    " stamp=COALESCE(stamp, ?) WHERE row=?",
                    (payload, stamp, row),
                )
            db.executemany(  # run 0: before every run's own images of it
                "INSERT OR IGNORE INTO before_images (row, record_id, field, value, run, written)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                (
                    (row, record_id, f, _json(before), _json(written))
                    for f, before, written in json.loads(changes or "[]")
                ),
            )
            db.execute("DELETE FROM moved_records WHERE id=?", (key,))

    def done(
        self,
        row: int,
        action: Action,
        record_id: int | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        *,
        not_applied: str | None = None,
        stamp: str | None = None,
    ) -> None:
        """Done; an update keeps each changed field's value before and the value written.
        `not_applied`: what of the write Insightly did not apply, if anything. `stamp`: the
        record's DATE_UPDATED_UTC as our write left it (undo: was it changed since?)."""
        with self.store.transaction() as db:
            if record_id is not None:
                self._move_on(db, row, record_id)
                self._take_back(db, row, record_id)
            db.execute(
                "UPDATE rows SET state=?, action=?, record_id=?, status=NULL, message=?,"
                " not_applied=?, updated_utc=?, run=?,"
                " created=CASE WHEN ?=? THEN 1 ELSE created END, stamp=COALESCE(?, stamp)"
                " WHERE row=?",
                (
                    RowState.DONE,
                    action,
                    record_id,
                    not_applied,
                    int(not_applied is not None),
                    utc_now(),
                    self.store.run,
                    action,
                    Action.CREATE,
                    stamp,
                    row,
                ),
            )
            if before and record_id is not None:
                db.executemany(
                    "INSERT OR REPLACE INTO before_images (row, record_id, field, value, run,"
                    " written) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        (
                            row,
                            record_id,
                            f,
                            _json(v),
                            self.store.run,
                            _json((after or {}).get(f)),
                        )
                        for f, v in before.items()
                    ),
                )
        if self._claimed is not None and record_id is not None:
            self._claimed.add(record_id)

    def touched(self, row: int, stamp: str) -> None:
        """A step of ours changed the record after its write: its stamp moves on with it, so
        undo does not take our own step for a colleague's edit."""
        now = iso_instant(stamp)
        was = self.db.execute("SELECT stamp FROM rows WHERE row=?", (row,)).fetchone()
        earlier = iso_instant(was[0]) if was and was[0] else None
        if now is not None and (earlier is None or earlier < now):  # as instants (undo.py)
            self.db.execute("UPDATE rows SET stamp=? WHERE row=?", (stamp, row))

    def failed(self, row: int, status: int | None, message: str) -> None:
        self.db.execute(
            "UPDATE rows SET state=?, status=?, message=?, updated_utc=?, run=? WHERE row=?",
            (RowState.FAILED, status, message, utc_now(), self.store.run, row),
        )

    def unknown(self, row: int, message: str) -> None:
        self.db.execute(
            "UPDATE rows SET state=?, message=?, updated_utc=?, run=? WHERE row=?",
            (RowState.UNKNOWN, message, utc_now(), self.store.run, row),
        )

    def refused(self) -> Iterable[tuple[int, str, str | None]]:
        """(line, state, message) of every rejected or failed row, by line."""
        cur = self.db.execute(
            # in order, unsorted (class doc): a row's line grows with it
            "SELECT line, state, message FROM rows WHERE +state IN (?, ?) ORDER BY row",
            (RowState.REJECTED, RowState.FAILED),
        )
        return ((int(line), str(state), message) for line, state, message in cur)

    def not_applied(self) -> int:
        """Done rows whose answer lacked a value they sent (see execute.py)."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM rows WHERE state=? AND not_applied=1", (RowState.DONE,)
            ).fetchone()[0]
        )

    def counts(self, *, created_first: bool = False) -> dict[tuple[Action | None, RowState], int]:
        """Rows by (action, state): the last run's action, or with `created_first` "create"
        for every row whose record an import created, whatever later runs did to it (status,
        undo). A record a row created before it took another is in `moved_records`, not here."""
        action = "CASE WHEN created=1 THEN 'create' ELSE action END" if created_first else "action"
        cur = self.db.execute(f"SELECT {action} AS a, state, COUNT(*) FROM rows GROUP BY a, state")
        return {(Action(a) if a else None, RowState(s)): n for a, s, n in cur}

    def changes(self) -> dict[int, list[FieldChange]]:
        """Per row, each field an update changed: the value before the first run that changed
        it, and the value the last such run wrote (for undo). Of the record the row has now
        (the ones it left are in `moved_records`)."""
        return _folded(
            self.db.execute(
                "SELECT b.row, b.record_id, b.field, b.value, b.written FROM before_images b"
                " JOIN rows r ON r.row = b.row AND r.record_id = b.record_id WHERE b.row >= 0"
                " ORDER BY b.row, b.field, b.run"
            )
        )

    def _changes(self, row: int, record_id: int) -> list[FieldChange]:
        """changes() of one row and one record."""
        cur = self.db.execute(
            "SELECT row, record_id, field, value, written FROM before_images"
            " WHERE row=? AND record_id=? ORDER BY field, run",
            (row, record_id),
        )
        return _folded(cur).get(row, [])

    def last_write(self, row: int, record_id: int) -> LastWrite:
        """What earlier runs wrote to the row's record (LastWrite)."""
        got = self.db.execute(
            "SELECT stamp FROM rows WHERE row=? AND record_id=?", (row, record_id)
        ).fetchone()
        if got is None:
            return LastWrite()
        return LastWrite(got[0], {c.field: c.written for c in self._changes(row, record_id)})

    def created(self) -> list[CreatedRow]:
        """Every record the import created, by row."""
        cur = self.db.execute(
            "SELECT row, line, record_id, payload, stamp FROM rows"
            " WHERE created=1 AND record_id IS NOT NULL ORDER BY row"
        )
        return [CreatedRow(r, line, _record(rid), _body(p), st) for r, line, rid, p, st in cur]

    def moved(self) -> list[MovedRecord]:
        """Every record a row wrote before it took another (see _move_on)."""
        cur = self.db.execute(
            "SELECT id, line, record_id, created, payload, stamp, changes FROM moved_records"
            " ORDER BY id"
        )
        return [
            MovedRecord(
                -key,
                line,
                _record(rid),
                _body(payload),
                stamp,
                bool(created),
                tuple(
                    FieldChange(_record(rid), str(f), before, written)
                    for f, before, written in json.loads(changes or "[]")
                ),
            )
            for key, line, rid, created, payload, stamp, changes in cur
        ]

    def sent(self, *, this_run: bool = False) -> bool:
        """Whether any run (or this one) sent a write for any row."""
        where = "sent_at IS NOT NULL" + (" AND run=?" if this_run else "")
        args = (self.store.run,) if this_run else ()
        return (
            self.db.execute(f"SELECT 1 FROM rows WHERE {where} LIMIT 1", args).fetchone()
            is not None
        )

    def unsettled(self) -> int:
        """Rows whose write may or may not have happened."""
        return int(
            self.db.execute(f"SELECT COUNT(*) FROM rows WHERE state IN ({_UNSETTLED})").fetchone()[
                0
            ]
        )
