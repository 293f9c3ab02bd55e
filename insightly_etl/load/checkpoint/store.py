"""The checkpoint file: its schema, its versions, opening it, its metadata and its runs.

The schema below is the whole schema; `PRAGMA user_version` says which version a file has.
A file of an earlier version is migrated when it is opened for a run, in one transaction, and
read through a migrated in-memory copy when it is only looked at (`status`, a dry run), so the
file stays exactly as it was. Every state and action column has a `CHECK` made from the enums
of load/states.py: no other value can be written.

    version 0  the schema before versions (columns added one by one as features came)
    version 1  CHECK constraints; `rows.not_applied`; `rows.created` 0/1, never NULL
    version 2  `runs.kind` (import, reconcile, undo); `runs.outcome` names the stop as a run
               summary does (quota, reserve or budget, not "quota" for all three). Runs of
               earlier versions keep their words and have no kind.
    version 3  `moved_records`: a record a row created or updated before it took another record
               (its match key was edited): undo still deletes or restores it, as itself
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from insightly_etl.account_id import AccountId
from insightly_etl.errors import CheckpointError, StopReason
from insightly_etl.files import utc_now
from insightly_etl.load.checkpoint.rerun import RerunChanges, bind
from insightly_etl.load.checkpoint.rows import RowJournal
from insightly_etl.load.checkpoint.steps import StepJournal
from insightly_etl.load.checkpoint.undo import UndoJournal
from insightly_etl.load.states import (
    STOP_EXITS,
    Action,
    RowState,
    StepAction,
    StepState,
    UndoState,
)
from insightly_etl.lock import RunLock

VERSION = 4  # 4: a run that ended in an error says so (outcome `error`)
# how a run ended: the words of a run summary's stop_reason (errors.StopReason)
RUN_OUTCOMES = ("finished", "dry-run", str(StopReason.ERROR), *STOP_EXITS)
RunKind = Literal["import", "reconcile", "undo"]
RUN_KINDS = get_args(RunKind)


def _one_of(column: str, values: Any, *, null: bool = False) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    return (
        f"CHECK ({column} IS NULL OR {column} IN ({allowed}))"
        if null
        else (f"CHECK ({column} IN ({allowed}))")
    )


@dataclass
class RunRecord:
    outcome: str = "finished"  # one of RUN_OUTCOMES


TABLES = {
    "meta": "key TEXT PRIMARY KEY, value TEXT NOT NULL",
    "rows": f"""
    row INTEGER PRIMARY KEY,          -- position in the file, from 0
    line INTEGER NOT NULL,            -- where it is in the file (line, sheet row, row number)
    action TEXT {_one_of("action", Action, null=True)},
    state TEXT NOT NULL {_one_of("state", RowState)},
    record_id INTEGER,
    payload TEXT,                     -- the body sent (JSON), for reconciliation
    sent_at TEXT,                     -- UTC, just before the request left
    status INTEGER,                   -- HTTP status of a failure
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run INTEGER,
    updated_utc TEXT NOT NULL,
    digest TEXT,                      -- the row's fingerprint (pairing.py)
    created INTEGER NOT NULL DEFAULT 0 CHECK (created IN (0, 1)),  -- an import created it
    stamp TEXT,                       -- DATE_UPDATED_UTC as our last write left the record
    not_applied INTEGER NOT NULL DEFAULT 0 CHECK (not_applied IN (0, 1))  -- see `message`
    """,
    "removed_rows": f"""   -- rows of an earlier version of the file, gone from it
    line INTEGER NOT NULL, action TEXT {_one_of("action", Action, null=True)},
    state TEXT NOT NULL {_one_of("state", RowState)}, record_id INTEGER, digest TEXT,
    removed_run INTEGER NOT NULL
    """,
    "moved_records": """   -- written by a row that since took another record (rows.py)
    id INTEGER PRIMARY KEY,           -- undo's journal keeps it as row -id
    line INTEGER NOT NULL, record_id INTEGER NOT NULL,
    created INTEGER NOT NULL CHECK (created IN (0, 1)),  -- the import created it: undo deletes
    payload TEXT, stamp TEXT,         -- as in rows, for a created one
    changes TEXT,                     -- JSON [[field, before, written], …]: undo restores these
    run INTEGER NOT NULL              -- the run in which the row moved on
    """,
    "before_images": """
    row INTEGER NOT NULL, record_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT,
    run INTEGER NOT NULL, written TEXT,  -- JSON: the value before, and the value the run wrote
    PRIMARY KEY (row, field, run)
    """,
    "undo": f"""   -- `undo`'s own journal: resumable like the import
    row INTEGER PRIMARY KEY, state TEXT NOT NULL {_one_of("state", UndoState)}, message TEXT,
    updated_utc TEXT NOT NULL
    """,
    "steps": f"""
    row INTEGER NOT NULL,
    step TEXT NOT NULL,               -- pipeline | state | link:COLUMN
    want TEXT NOT NULL,               -- JSON: what the step sets; another value is another step
    record_id INTEGER NOT NULL,
    action TEXT {_one_of("action", StepAction, null=True)},
    state TEXT NOT NULL {_one_of("state", StepState)},
    status INTEGER,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run INTEGER,
    updated_utc TEXT NOT NULL,
    PRIMARY KEY (row, step)
    """,
    "runs": f"""
    run INTEGER PRIMARY KEY, started_utc TEXT NOT NULL, finished_utc TEXT,
    requests INTEGER NOT NULL DEFAULT 0, outcome TEXT {_one_of("outcome", RUN_OUTCOMES, null=True)},
    sent_minutes TEXT,  -- JSON {{"yyyy-mm-dd HH:MM": n}}: for the rolling 24-hour quota window
    kind TEXT {_one_of("kind", RUN_KINDS, null=True)}  -- NULL: a run of version 0 or 1
    """,
}
INDEXES = "CREATE INDEX IF NOT EXISTS rows_state ON rows(state);"
SCHEMA = (
    "\n".join(f"CREATE TABLE {name} ({columns});" for name, columns in TABLES.items()) + INDEXES
)

# version 0 as its last release left it: what migrating from it starts from
_V0_COLUMNS = {
    "rows": {"digest": "TEXT", "created": "INTEGER", "stamp": "TEXT"},
    "runs": {"sent_minutes": "TEXT"},
    "before_images": {"written": "TEXT"},
}
_V0_TABLES = {
    "undo": "row INTEGER PRIMARY KEY, state TEXT NOT NULL, message TEXT, updated_utc TEXT NOT NULL",
    "steps": "row INTEGER NOT NULL, step TEXT NOT NULL, want TEXT NOT NULL, record_id INTEGER "
    "NOT NULL, action TEXT, state TEXT NOT NULL, status INTEGER, message TEXT, attempts INTEGER "
    "NOT NULL DEFAULT 0, run INTEGER, updated_utc TEXT NOT NULL, PRIMARY KEY (row, step)",
    "removed_rows": "line INTEGER NOT NULL, action TEXT, state TEXT NOT NULL, record_id "
    "INTEGER, digest TEXT, removed_run INTEGER NOT NULL",
    "before_images": "row INTEGER NOT NULL, record_id INTEGER NOT NULL, field TEXT NOT NULL, "
    "value TEXT, run INTEGER NOT NULL, PRIMARY KEY (row, field, run)",
}
_FROM_V0 = {  # column -> its value from a version-0 row, where it is not copied as it is
    "rows": {
        # a release before the column: a done create is a record an import created
        "created": "CASE WHEN created IS NULL AND action='create' AND state='done' THEN 1"
        " ELSE COALESCE(created, 0) END",
        "not_applied": "CASE WHEN state='done' AND message LIKE 'not applied:%' THEN 1 ELSE 0 END",
    },
}
_MINUTE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")  # runs.sent_minutes' keys
_NOT_OURS = "Name a new file with --checkpoint, or move that one away."
_WHICH = "Give the checkpoint an import wrote: FILE.checkpoint.sqlite beside its file."


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def _version(db: sqlite3.Connection, path: Path) -> int:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer insightly-etl (checkpoint version {version}; this "
            f"one reads up to {VERSION})",
            hint="Upgrade insightly-etl (pip install -U insightly-etl) to resume this import.",
        )
    return version


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring a checkpoint to VERSION, in one transaction (all or nothing)."""
    if not _tables(db):
        db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {VERSION}; COMMIT;")
        return
    if (version := _version(db, path)) == VERSION:
        return
    try:
        db.execute("BEGIN IMMEDIATE")
        for name, columns in _V0_TABLES.items():  # tables later releases of version 0 added
            db.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
        for table, added in _V0_COLUMNS.items():
            have = _columns(db, table)
            for column, kind in added.items():
                if column not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for table, columns in TABLES.items():
            if table == "meta":
                continue
            if table not in _tables(db):  # a table of a later version
                db.execute(f"CREATE TABLE {table} ({columns})")
                continue
            db.execute(f"CREATE TABLE {table}_new ({columns})")
            target = _columns(db, f"{table}_new")
            present = set(_columns(db, table))
            source = _FROM_V0.get(table, {}) if version == 0 else {}
            values = [source.get(c, c if c in present else "NULL") for c in target]
            db.execute(
                f"INSERT INTO {table}_new ({', '.join(target)}) "
                f"SELECT {', '.join(values)} FROM {table}"
            )
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
        db.execute(INDEXES)
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:  # a CHECK refused a value no version ever wrote
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise  # not the file's content (read-only, disk full): said as such, exit 74
        raise CheckpointError(
            f"{path} cannot be brought to checkpoint version {VERSION} ({exc}); left as it was",
            hint="Resume it with the insightly-etl that wrote it, or start afresh with a new "
            "--checkpoint.",
        ) from None


# what reading a checkpoint something else changed may raise (json's JSONDecodeError too)
DAMAGE = (ValueError, TypeError, KeyError, AttributeError)


def damaged(path: Path, exc: Exception) -> CheckpointError:
    """The error for a checkpoint holding what this tool never writes."""
    return CheckpointError(
        f"{path}: a damaged checkpoint ({type(exc).__name__}: {exc})",
        hint="It was changed by something other than insightly-etl; keep a copy and "
        "report it if it was not.",
    )


def _refuse_if_not_ours(path: Path) -> None:
    """Look, read-only, before writing anything: someone else's SQLite file (or any other
    file) must not be converted to WAL or given our tables."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file, so not an import checkpoint")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = _tables(db)
            _version(db, path)
    except sqlite3.DatabaseError as exc:
        raise CheckpointError(
            f"{path} is not an import checkpoint ({exc})", hint=_NOT_OURS
        ) from None
    if tables and not {"meta", "rows", "runs"} <= tables:
        raise CheckpointError(
            f"{path} is an SQLite file but not an import checkpoint (no meta/rows/runs tables); "
            "left as it was",
            hint="Name a new file with --checkpoint.",
        )


_SCRATCH = "insightly-etl-dry-run-"  # a dry run's copy of the checkpoint: its folder's name
_SWEPT_AFTER = 60.0  # seconds: a younger copy's run may be taking its lock


def _sweep_scratch(folder: Path) -> None:
    """Remove the copies of dry runs killed (-9) before they could remove theirs: this
    user's folders whose lock no process holds (the OS dropped it when the run ended). A
    million rows' copy is some 200 MB. A live dry run's, a link, another user's, one made in
    the last minute (its run may be taking its lock now): left."""
    for other in folder.glob(f"{_SCRATCH}*"):
        try:
            made = other.lstat()  # a link is no folder: left
            if not stat.S_ISDIR(made.st_mode) or made.st_uid != getattr(os, "getuid", int)():
                continue
            if time.time() - made.st_mtime < _SWEPT_AFTER:
                continue
            if not (other / "checkpoint.sqlite.lock").is_file():
                continue  # made by a version without the lock, or being made now
            RunLock(other / "checkpoint.sqlite").release()
        except (CheckpointError, OSError):  # held by a live dry run, or unreadable
            continue
        shutil.rmtree(other, ignore_errors=True)


# A run's sorts and groupings (its rows counted by action and state, an index built) in
# memory — 45 MB for a million rows' count — not in SQLite's temporary files in TMPDIR,
# which an import of a large file fills with its values (load/spill.py): with no room left
# there, a run that had sent its writes failed counting them.
_IN_MEMORY_SORTS = "PRAGMA temp_store=MEMORY"


class Checkpoint:
    """The open checkpoint: the database, the run lock, metadata and runs. Its journals (rows,
    steps, undo) are the attributes of the same names."""

    scratch_dir: Path | None = None  # a dry run's copy lives here (`scratch`)
    scratch_lock: RunLock | None = None  # held while it does: a copy no one holds is swept

    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self.path = path
        if path.is_symlink() and not path.exists():  # a new checkpoint is never made through one
            raise CheckpointError(
                f"{path} is a link to {path.readlink()}, which does not exist: a checkpoint "
                "is never created through a link",
                hint="Remove the link, or point it at an existing checkpoint.",
            )
        _refuse_if_not_ours(path)  # before anything is created beside it
        if lock and path.is_file() and path.stat().st_nlink > 1:
            # another name for the same file would meet another lock: two runs at once
            raise CheckpointError(
                f"{path} has {path.stat().st_nlink} names (hard links): a run under one would "
                "not see a run under another, and both would send every row",
                hint="Keep one name: copy the file (cp) instead of linking it, or remove the "
                "other names.",
            )
        # the lock is named after the real file: a symlink or another spelling of the same
        # path must meet the same lock
        self.lock = RunLock(path.resolve()) if lock else None
        try:
            self.db = sqlite3.connect(path, isolation_level=None)  # autocommit; explicit tx
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (the OS has it);
            # only a power cut could lose the last commits.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(_IN_MEMORY_SORTS)
            _migrate(self.db, path)
        except (sqlite3.DatabaseError, CheckpointError) as exc:
            if hasattr(self, "db"):
                self.db.close()
            self._release()
            if isinstance(exc, CheckpointError | sqlite3.OperationalError):
                raise  # an operational one (read-only, disk full) is no verdict on the file
            raise CheckpointError(
                f"{path} is not an import checkpoint ({exc})", hint=_NOT_OURS
            ) from None
        self._journals()

    def _journals(self) -> None:
        self.run = 0
        self.rows = RowJournal(self)
        self.steps = StepJournal(self)
        self.undo = UndoJournal(self)

    @classmethod
    def existing(cls, path: Path) -> Checkpoint:
        """An import's checkpoint, for a command that works on one (`reconcile`, `undo`): a
        missing, empty or foreign file is refused as it is, never made into a new one."""
        hint = _WHICH
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file", hint=hint)
        if path.stat().st_size == 0:
            raise CheckpointError(f"{path} is empty: not an import checkpoint", hint=hint)
        try:
            return cls(path)
        except CheckpointError as exc:
            exc.hint = hint if exc.hint == _NOT_OURS else exc.hint
            raise

    @classmethod
    def read_only(cls, path: Path) -> Checkpoint:
        """For looking only (`status`): no lock, no write, nothing created or converted. A
        file of an earlier version is read through a migrated copy in memory."""
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
        self = cls.__new__(cls)
        self.path, self.lock = path, None
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            try:
                tables = _tables(self.db)
            except sqlite3.OperationalError:  # a read-only folder: no room for WAL's -shm file
                self.db.close()
                self.db = sqlite3.connect(
                    f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None
                )
                tables = _tables(self.db)
            version = _version(self.db, path)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise CheckpointError(
                f"{path} is not an import checkpoint ({exc})", hint=_WHICH
            ) from None
        except CheckpointError:
            self.db.close()
            raise
        if not {"meta", "rows", "runs"} <= tables:
            self.db.close()
            raise CheckpointError(
                f"{path} is an SQLite file but not an import checkpoint (no meta/rows/runs tables)"
            )
        if version < VERSION:
            self.db = self._in_memory(self.db)
        self._journals()
        return self

    def _in_memory(self, source: sqlite3.Connection) -> sqlite3.Connection:
        copy = sqlite3.connect(":memory:", isolation_level=None)
        try:
            source.backup(copy)
        finally:
            source.close()
        _migrate(copy, self.path)
        return copy

    @classmethod
    def scratch(cls, path: Path) -> Checkpoint:
        """A copy of the checkpoint at `path` (or an empty one), for a dry run: it plans from
        what earlier runs did, and leaves the file exactly as it was. The copy is a file in a
        private temporary folder, removed on close, not a database in memory: the journal of
        a million rows would take some 350 MB of it."""
        self = cls.__new__(cls)
        self.path, self.lock = path, None
        self.scratch_dir = Path(tempfile.mkdtemp(prefix=_SCRATCH))  # 0700
        try:
            self.scratch_lock = RunLock(self.scratch_dir / "checkpoint.sqlite")
            _sweep_scratch(self.scratch_dir.parent)
            self.db = sqlite3.connect(self.scratch_dir / "checkpoint.sqlite", isolation_level=None)
            self.db.execute("PRAGMA journal_mode=MEMORY")  # thrown away after the run; a
            # rolled-back transaction must still roll back
            self.db.execute("PRAGMA synchronous=OFF")
            self.db.execute(_IN_MEMORY_SORTS)
            if path.is_file():
                source = cls.read_only(path)
                try:
                    source.db.backup(self.db)
                finally:
                    source.db.close()
            _migrate(self.db, path)
        except BaseException:
            self.close()
            raise
        self._journals()
        return self

    def _release(self, *, remove: bool = False) -> None:
        if self.lock is not None:
            self.lock.release(remove=remove)
            self.lock = None

    def close(self) -> None:
        if self.lock is not None:  # the run's own file: out of WAL mode again, so that no
            # -wal and -shm files are left beside it, nor made by `status` and `report` later
            with contextlib.suppress(sqlite3.OperationalError):  # busy: a reader looks now
                self.db.execute("PRAGMA journal_mode=DELETE")
        if hasattr(self, "db"):
            self.db.close()
        self._release()
        if self.scratch_lock is not None:
            self.scratch_lock.release()
            self.scratch_lock = None
        if self.scratch_dir is not None:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)
            self.scratch_dir = None

    def discard(self) -> None:
        """Close and delete the file while the lock is still held, so that no other run opens
        it in between (a checkpoint a run made and wrote nothing with)."""
        if hasattr(self, "db"):
            self.db.close()
        for suffix in ("", "-wal", "-shm", "-journal"):  # SQLite's files beside it
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        self._release(remove=True)  # no lock file left beside no checkpoint

    # ---------------------------------------------------------------- metadata
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def remember(self, **values: str) -> None:
        """Keep a fact for the next run (e.g. the rate the account turned out to allow)."""
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    def bind(self, **facts: Any) -> RerunChanges:
        """Tie the checkpoint to its file and mapping, or carry it over to them (rerun.py)."""
        return bind(self, **facts)

    def account(self) -> AccountId:
        """The account the checkpoint's first run wrote to, as far as it could tell."""
        return AccountId.of(self.meta("account"), self.meta("account_number"))

    def bind_account(self, this: AccountId, *, record: bool = True) -> None:
        """The checkpoint belongs to the account its first run wrote to: a run against another
        would take that account's rows for done (or its records for this one's). `this`:
        the key's account (InsightlyClient.identify)."""
        known = self.account()
        if why := this.mismatch_with(known):
            raise CheckpointError(
                f"{self.path} belongs to an import into {known.shown}; {why}",
                hint="Use another --checkpoint for this account (or the key of the checkpoint's).",
            )
        remembered = this.merged_with(known)
        if not record or remembered == known:
            return
        facts = {}  # the meta table holds text: the number as its digits
        if remembered.name:
            facts["account"] = remembered.name
        if remembered.number is not None:
            facts["account_number"] = str(remembered.number)
        self.remember(**facts)

    # ---------------------------------------------------------------- runs
    def start_run(self, kind: RunKind = "import") -> int:
        cur = self.db.execute(
            "INSERT INTO runs (started_utc, kind) VALUES (?, ?)", (utc_now(), kind)
        )
        self.run = int(cur.lastrowid or 0)
        return self.run

    def forget_run(self) -> None:
        """The run just started never began its work (refused): leave no trace of it."""
        self.db.execute("DELETE FROM runs WHERE run=? AND finished_utc IS NULL", (self.run,))

    def next_run(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(run), 0) + 1 FROM runs").fetchone()[0])

    def finish_run(
        self, requests: int, outcome: str, sent_minutes: dict[str, int] | None = None
    ) -> None:
        self.db.execute(
            "UPDATE runs SET finished_utc=?, requests=?, outcome=?, sent_minutes=? WHERE run=?",
            (utc_now(), requests, outcome, json.dumps(sent_minutes or {}), self.run),
        )

    def spent_so_far(self, requests: int, sent_minutes: dict[str, int]) -> None:
        """The run's requests so far, by minute, its end still open: a run killed later
        still counts in the quota's window (it said 0 requests)."""
        self.db.execute(
            "UPDATE runs SET requests=?, sent_minutes=? WHERE run=?",
            (requests, json.dumps(sent_minutes), self.run),
        )

    @contextmanager
    def recorded_run(
        self, kind: RunKind, spent: Callable[[], tuple[int, dict[str, int]]]
    ) -> Iterator[RunRecord]:
        """A run of reconcile or undo, in `runs` beside the import's, so status, the report and
        the quota plan count its requests: `spent()` gives them (count, by minute) at the end.
        The caller may set the record's outcome (a quota stop). A quota stop or Ctrl-C raised
        through it is recorded as such; another exception records the requests and leaves the
        outcome open, as a killed run's is."""
        record = RunRecord()
        self.start_run(kind)
        try:
            yield record
        except BaseException as exc:  # what it spent counts, however it ended
            reason = str(getattr(exc, "stop_reason", ""))
            record.outcome = reason if reason in RUN_OUTCOMES else ""
            if isinstance(exc, KeyboardInterrupt):
                record.outcome = "interrupted"
            raise
        finally:
            requests, minutes = spent()
            if record.outcome:
                self.finish_run(requests, record.outcome, minutes)
            else:  # an error: the requests and their minutes, the outcome left open
                self.spent_so_far(requests, minutes)

    def sent_minutes(self) -> list[tuple[str, int]]:
        """Every run's requests by minute: what this tool spent of the rolling window. Only
        what this tool writes, `{"yyyy-mm-dd HH:MM": n}`: anything else a hand put there is
        passed over (it went into the report's chart as markup, or ended status in a crash)."""
        out: list[tuple[str, int]] = []
        for (text,) in self.db.execute(
            "SELECT sent_minutes FROM runs WHERE sent_minutes IS NOT NULL"
        ):
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                minutes = json.loads(text)
                out.extend(
                    (minute, n)
                    for minute, n in minutes.items()
                    if _MINUTE.fullmatch(minute)
                    and isinstance(n, int)
                    and not isinstance(n, bool)
                    and n >= 0
                )
        return out

    def runs(self) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT run, started_utc, finished_utc, requests, outcome, kind FROM runs ORDER BY run"
        )
        names = ("run", "started_utc", "finished_utc", "requests", "outcome", "kind")
        return [dict(zip(names, r, strict=True)) for r in cur]

    # ---------------------------------------------------------------- transactions
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, kind: object, *rest: object) -> None:
            if kind is None:
                self.db.execute("COMMIT")
            elif self.db.in_transaction:  # a full disk: SQLite rolled back itself, and a
                self.db.execute("ROLLBACK")  # ROLLBACK now would hide why (no transaction)

    def transaction(self) -> Checkpoint._Tx:
        return Checkpoint._Tx(self.db)
