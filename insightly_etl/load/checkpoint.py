"""The import checkpoint: one SQLite file that survives `kill -9` at any instant.

Every row has a state, committed before the request that changes it leaves and again when the
answer arrives, so a run that dies loses nothing: at worst a row is `in_flight`, which means
"outcome unknown" and is reconciled before anything is re-sent.

    planned ─▶ in_flight ─▶ done (record id) | failed (status, message)
                     └────▶ unknown (the write may have been applied) ─▶ reconciled
    rejected (validation) · duplicate (same key earlier in the file) · skipped (by option)

Updates also keep the before-image of every field they change, so an import can be undone.

Steps (a pipeline, stage or state change, a link: load/steps.py) come after a row's record
write and have a journal of their own, `steps`, by row and step: what the step sets (`want`), for
which record, and the same in_flight → done | failed | unknown states. A done step with the
same want for the same record is never sent again; any other is decided again against the
record as Insightly has it.

Fix-and-rerun: the file and the mapping are fingerprinted (sha256), and every row too. Run
again after editing the file and each row finds its earlier state by its content: unchanged
rows keep it (done rows cost nothing), edited rows are planned again (keeping the record id an
earlier run created, so an edit becomes an update, never a second record), new rows are
planned, vanished rows are set aside in `removed_rows` and never touched. After a mapping change
every row is planned again against Insightly's current state (diff-based: what is already there
costs no write). Refused only where it is unsafe: another object, or rows whose outcome is still
unknown and whose content changed (they are settled first, with the file as it was).

One run at a time: a run holds an exclusive lock on `CHECKPOINT.lock` (flock) for as long as it
has the checkpoint open, so a second run on the same file refuses at once instead of sending
every row again. The operating system drops the lock when the process ends, however it ends, so
a run killed with -9 never leaves a lock that blocks the next one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insightly_etl.config import redact
from insightly_etl.errors import CheckpointError, CheckpointInUse
from insightly_etl.files import utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    row INTEGER PRIMARY KEY,          -- position in the file, from 0
    line INTEGER NOT NULL,            -- where it is in the file (line, sheet row, row number)
    action TEXT,                      -- create | update | unchanged | duplicate | skip
    state TEXT NOT NULL,              -- planned | in_flight | unknown | done | failed | rejected | duplicate | skipped
    record_id INTEGER,
    payload TEXT,                     -- the body sent (JSON), for reconciliation
    sent_at TEXT,                     -- UTC, just before the request left
    status INTEGER,                   -- HTTP status of a failure
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run INTEGER,
    updated_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_state ON rows(state);
CREATE TABLE IF NOT EXISTS removed_rows (    -- rows of an earlier version of the file, gone from it
    line INTEGER NOT NULL, action TEXT, state TEXT NOT NULL, record_id INTEGER, digest TEXT,
    removed_run INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS before_images (
    row INTEGER NOT NULL, record_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT,
    run INTEGER NOT NULL, written TEXT,  -- JSON: the value before, and the value the run wrote
    PRIMARY KEY (row, field, run)
);
CREATE TABLE IF NOT EXISTS undo (     -- `undo`'s own journal: resumable like the import
    row INTEGER PRIMARY KEY, state TEXT NOT NULL, message TEXT, updated_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    row INTEGER NOT NULL,
    step TEXT NOT NULL,               -- pipeline | state | link:COLUMN
    want TEXT NOT NULL,               -- JSON: what the step sets; another value is another step
    record_id INTEGER NOT NULL,
    action TEXT,                      -- the request: pipeline | stage | unpipeline | state | link; already: none was needed
    state TEXT NOT NULL,              -- in_flight | unknown | done | failed
    status INTEGER,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run INTEGER,
    updated_utc TEXT NOT NULL,
    PRIMARY KEY (row, step)
);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY, started_utc TEXT NOT NULL, finished_utc TEXT,
    requests INTEGER NOT NULL DEFAULT 0, outcome TEXT,
    sent_minutes TEXT  -- JSON {"yyyy-mm-dd HH:MM": n}: for the rolling 24-hour quota window
);
"""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mapping_fingerprint(mapping_file: Path | None, object_name: str) -> str:
    text = mapping_file.read_bytes() if mapping_file else b"(no mapping)"
    return hashlib.sha256(text + b"\0" + object_name.encode()).hexdigest()


@dataclass
class RerunChanges:
    """What changed since the last run on this checkpoint."""

    edited: int = 0
    new: int = 0
    removed: int = 0
    file_changed: bool = False
    mapping_changed: bool = False
    undone: int = 0  # rows an undo had reversed, imported again now

    def describe(self) -> str | None:
        parts = []
        if self.file_changed:
            parts.append(
                f"{self.edited:,} row(s) edited, {self.new:,} new, {self.removed:,} removed "
                "(removed rows are left alone in Insightly)"
            )
        if self.mapping_changed:
            parts.append("the mapping changed: every row is compared with Insightly again")
        if self.undone:
            parts.append(f"the import was undone: its {self.undone:,} row(s) are imported again")
        return "; ".join(parts) or None


CELL_HEX = 8  # characters of each cell's fingerprint in a row digest
MAX_PAIRING_SCAN = 2_000  # unpaired earlier rows searched for each edited row, at most


def row_digests(frame: Any) -> list[str]:
    """A fingerprint of each row: the header's, then 8 hex characters per cell, so a row is
    known again after edits (all equal) and an edit can be told from a different row (most
    cells still equal)."""
    import pandas as pd

    header = hashlib.sha256("\0".join(map(str, frame.columns)).encode()).hexdigest()[:CELL_HEX]
    columns = [
        pd.util.hash_array(frame[name].astype(str).to_numpy(dtype=object)) & 0xFFFFFFFF
        for name in frame.columns
    ]
    return (
        [header + "".join(f"{c:08x}" for c in cells) for cells in zip(*columns, strict=True)]
        if columns
        else [header] * len(frame)
    )


def _mostly_same(a: str, b: str) -> bool:
    """Is row digest `b` an edit of `a`: same header, at least half of the cells unchanged?"""
    if a[:CELL_HEX] != b[:CELL_HEX] or len(a) != len(b):
        return False
    cells = range(CELL_HEX, len(a), CELL_HEX)
    same = sum(a[i : i + CELL_HEX] == b[i : i + CELL_HEX] for i in cells)
    return same > 0 and 2 * same >= len(cells)


@dataclass(frozen=True)
class FieldChange:
    record_id: int
    field: str
    before: Any
    written: Any


@dataclass(frozen=True)
class RowState:
    row: int
    line: int
    action: str | None
    state: str
    record_id: int | None
    payload: dict[str, Any] | None
    sent_at: str | None
    status: int | None
    message: str | None
    attempts: int


@dataclass(frozen=True)
class StepState:
    row: int
    step: str
    want: str
    record_id: int
    action: str | None
    state: str
    status: int | None
    message: str | None


def _refuse_if_not_ours(path: Path) -> None:
    """Look, read-only, before writing anything: someone else's SQLite file (or any other
    file) must not be converted to WAL or given our tables."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file, so not an import checkpoint")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise CheckpointError(
            f"{path} is not an import checkpoint ({exc})",
            hint="Name a new file with --checkpoint, or move that one away.",
        ) from None
    if tables and not {"meta", "rows", "runs"} <= tables:
        raise CheckpointError(
            f"{path} is an SQLite file but not an import checkpoint (no meta/rows/runs tables); "
            "left as it was",
            hint="Name a new file with --checkpoint.",
        )


class RunLock:
    """An exclusive, non-blocking lock beside the checkpoint, released by the OS at exit."""

    def __init__(self, checkpoint: Path) -> None:
        self.path = checkpoint.with_name(checkpoint.name + ".lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 200).decode("utf-8", "replace").split(" ", 1)
            os.close(self.fd)
            pid, since = [*holder, "?", "?"][:2] if holder[0] else ["?", "?"]
            raise CheckpointInUse(
                f"{checkpoint} is in use by process {pid} since {since.strip()} UTC",
                hint="Two runs on one checkpoint would send every row twice: wait for that run "
                "to finish or stop it (Ctrl-C), then run again.",
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()} {utc_now()}\n".encode())

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing drops the lock; the empty file stays (deleting it would race)


class Checkpoint:
    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self.path = path
        _refuse_if_not_ours(path)  # before anything is created beside it
        # the lock is named after the real file: a symlink or another spelling of the same
        # path must meet the same lock
        self.lock = RunLock(path.resolve()) if lock else None
        try:
            self.db = sqlite3.connect(path, isolation_level=None)  # autocommit; explicit tx
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (the OS has it);
            # only a power cut could lose the last commits.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise CheckpointError(
                f"{path} is not an import checkpoint ({exc})",
                hint="Name a new file with --checkpoint, or move that one away.",
            ) from None
        self._migrate()
        self.run = 0

    def _migrate(self) -> None:
        """Checkpoints of earlier versions lack the row digest: add the column (empty)."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(rows)")}
        if "digest" not in columns:
            self.db.execute("ALTER TABLE rows ADD COLUMN digest TEXT")
        if "created" not in columns:  # 1: an earlier run created this row's record
            self.db.execute("ALTER TABLE rows ADD COLUMN created INTEGER")
        if "stamp" not in columns:  # the record's DATE_UPDATED_UTC in the answer to our write
            self.db.execute("ALTER TABLE rows ADD COLUMN stamp TEXT")
        runs = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
        if "sent_minutes" not in runs:
            self.db.execute("ALTER TABLE runs ADD COLUMN sent_minutes TEXT")
        images = {r[1] for r in self.db.execute("PRAGMA table_info(before_images)")}
        if "written" not in images:
            self.db.execute("ALTER TABLE before_images ADD COLUMN written TEXT")

    @classmethod
    def read_only(cls, path: Path) -> Checkpoint:
        """For looking only (`status`): no lock, no write, nothing created or converted."""
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
        self = cls.__new__(cls)
        self.path, self.lock, self.run = path, None, 0
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise CheckpointError(f"{path} is not an import checkpoint ({exc})") from None
        if not {"meta", "rows", "runs"} <= tables:
            self.db.close()
            raise CheckpointError(
                f"{path} is an SQLite file but not an import checkpoint (no meta/rows/runs tables)"
            )
        return self

    @classmethod
    def scratch(cls, path: Path) -> Checkpoint:
        """An in-memory copy of the checkpoint at `path` (or an empty one), for a dry run:
        it plans from what earlier runs did, and leaves the file exactly as it was."""
        self = cls.__new__(cls)
        self.path, self.lock, self.run = path, None, 0
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        if path.is_file():
            source = cls.read_only(path)
            try:
                source.db.backup(self.db)
            finally:
                source.close()
        self.db.executescript(SCHEMA)
        self._migrate()
        return self

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def close(self) -> None:
        self.db.close()
        self._release()

    # ---------------------------------------------------------------- identity
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def bind_account(self, account: str | None, *, record: bool = True) -> None:
        """The checkpoint belongs to the account its first run wrote to: a run against another
        would take that account's rows for done (or its records for this one's)."""
        known = self.meta("account")
        if known and account and known != account:
            raise CheckpointError(
                f"{self.path} belongs to an import into account {known!r}; this key is for "
                f"account {account!r}",
                hint="Use another --checkpoint for this account (or the key of the checkpoint's).",
            )
        if account and not known and record:
            self._set_meta(account=account)

    def bind(
        self,
        *,
        file_sha: str,
        mapping_sha: str,
        object_name: str,
        source: str,
        digests: list[str],
        lines: list[int],
        keyed: bool = True,
    ) -> RerunChanges:
        """Tie a new checkpoint to its file and mapping, or carry an existing one over to the
        file and mapping as they are now (see the module docstring)."""
        known = self.meta("file_sha256")
        if known is None:
            self._set_meta(
                file_sha256=file_sha,
                mapping_sha256=mapping_sha,
                object=object_name,
                source=source,
                created_utc=utc_now(),
            )
            self.register(zip(range(len(lines)), lines, digests, strict=True))
            return RerunChanges()
        if self.meta("object") != object_name:
            raise CheckpointError(
                f"{self.path} belongs to an import of {self.meta('object')}, not {object_name}: "
                "resuming would mix two imports",
                hint="Name another checkpoint with --checkpoint for this import.",
            )
        undone = self._forget_undo()  # before rows are renumbered: its journal is by row
        changes = RerunChanges()
        if known != file_sha:
            changes = self._rekey(digests, lines, keyed)
        else:
            self.register(zip(range(len(lines)), lines, digests, strict=True))
        changes.undone = undone
        if self.meta("mapping_sha256") != mapping_sha:
            changes.mapping_changed = True
            with self.transaction() as db:  # diffed again: what is already there costs no write
                db.execute("UPDATE rows SET state='planned' WHERE state IN ('done', 'skipped')")
        self._set_meta(file_sha256=file_sha, mapping_sha256=mapping_sha, source=source)
        return changes

    def _forget_undo(self) -> int:
        """After `undo`, running the import again imports again: rows whose record undo
        deleted create it anew, rows undo restored are compared with Insightly again."""
        undone = self.undo_states()
        if not undone:
            return 0
        with self.transaction() as db:
            db.executemany(
                "UPDATE rows SET state='planned', action=NULL, record_id=NULL, created=NULL,"
                " payload=NULL WHERE row=?",
                ((r,) for r, s in undone.items() if s in ("deleted", "gone")),
            )
            db.executemany(
                "UPDATE rows SET state='planned' WHERE row=? AND state='done'",
                ((r,) for r, s in undone.items() if s not in ("deleted", "gone")),
            )
            db.execute("DELETE FROM undo")
        return len(undone)

    def _rekey(self, digests: list[str], lines: list[int], keyed: bool) -> RerunChanges:
        old = self.db.execute(
            "SELECT row, digest, state, record_id, action FROM rows ORDER BY row"
        ).fetchall()
        if old and any(d is None for _, d, _, _, _ in old):
            raise CheckpointError(
                f"{self.path} was written by an older version that kept no row fingerprints, "
                f"and {self.meta('source')} changed since",
                hint="Resume with the file as it was, or start afresh with a new --checkpoint.",
            )
        unclaimed: dict[str, list[int]] = {}
        for row, digest, *_ in reversed(old):
            unclaimed.setdefault(digest, []).append(row)
        carried: dict[int, int] = {}  # new row -> old row with the same content
        for i, digest in enumerate(digests):
            if unclaimed.get(digest):
                carried[i] = unclaimed[digest].pop()
        claimed = set(carried.values())
        by_row = {row: (digest, state, rid, action) for row, digest, state, rid, action in old}
        edited: dict[int, int] = {}  # new row -> the old row it is an edit of
        fresh = [i for i in range(len(digests)) if i not in carried]
        header_kept = bool(old) and old[0][1][:CELL_HEX] == (
            digests[0][:CELL_HEX] if digests else ""
        )
        pool = [r for r in by_row if r not in claimed] if header_kept else []
        scan = len(pool) <= MAX_PAIRING_SCAN  # a few edits: look everywhere; many: in place
        for i in fresh if header_kept else []:  # the same place first, then any unclaimed row
            candidates = [i] if i in by_row and i not in claimed else []
            if scan:
                candidates += [r for r in pool if r not in claimed and r != i]
            match = next((r for r in candidates if _mostly_same(by_row[r][0], digests[i])), None)
            if match is not None:
                edited[i] = match
                claimed.add(match)
        removed = [row for row in by_row if row not in claimed]
        new_rows = [i for i in fresh if i not in edited]
        created_gone = [r for r in removed if by_row[r][1] == "done" and by_row[r][2] is not None]
        if not keyed and new_rows and created_gone:
            raise CheckpointError(
                f"{self.meta('source')} has {len(new_rows):,} new row(s) and lost "
                f"{len(created_gone):,} row(s) whose records an earlier run wrote; without a "
                "match key an edit cannot be told from a new record, and sending them could "
                "create a second record",
                hint="Add a match key (match: {column: …, field: …}) to the mapping, or put "
                "the lost rows back, or start a separate import with a new --checkpoint.",
            )
        unsettled = [
            row
            for row in (*edited.values(), *removed)
            if by_row[row][1] in ("in_flight", "unknown")
        ]
        if unsettled:
            raise CheckpointError(
                f"{len(unsettled)} row(s) of the last run have an unknown outcome and changed in "
                f"{self.meta('source')} since",
                hint="Run once more with the file as it was (that settles them at no risk of a "
                "second record), then with the edited file.",
            )
        now = utc_now()
        run = self.db.execute("SELECT COALESCE(MAX(run), 0) + 1 FROM runs").fetchone()[0]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO removed_rows SELECT line, action, state, record_id, digest, ? "
                "FROM rows WHERE row=?",
                ((run, row) for row in removed),
            )
            db.execute("UPDATE rows SET row = -1 - row")  # out of the way of the new numbers
            db.execute("UPDATE before_images SET row = -1 - row")
            db.execute("UPDATE steps SET row = -1 - row")
            for new, old_row in carried.items():
                db.execute(
                    "UPDATE rows SET row=?, line=? WHERE row=?", (new, lines[new], -1 - old_row)
                )
                db.execute("UPDATE before_images SET row=? WHERE row=?", (new, -1 - old_row))
                db.execute("UPDATE steps SET row=? WHERE row=?", (new, -1 - old_row))
            for new, old_row in edited.items():
                _, state, rid, action = by_row[old_row]
                keep = (
                    rid if state == "done" and action in ("create", "update", "unchanged") else None
                )
                db.execute(
                    "UPDATE rows SET row=?, line=?, digest=?, state='planned', action=NULL,"
                    " record_id=?, payload=NULL, status=NULL, message=NULL, updated_utc=?"
                    " WHERE row=?",
                    (new, lines[new], digests[new], keep, now, -1 - old_row),
                )
                db.execute("UPDATE before_images SET row=? WHERE row=?", (new, -1 - old_row))
                db.execute("UPDATE steps SET row=? WHERE row=?", (new, -1 - old_row))
            db.execute("DELETE FROM rows WHERE row < 0")
            db.execute("DELETE FROM steps WHERE row < 0")
            # vanished rows' images (kept in removed_rows' spirit, not for undo: see undo.py)
            db.execute("DELETE FROM before_images WHERE row < 0")
            db.executemany(
                "INSERT OR IGNORE INTO rows (row, line, state, digest, updated_utc)"
                " VALUES (?, ?, 'planned', ?, ?)",
                ((i, lines[i], digests[i], now) for i in range(len(digests))),
            )
        return RerunChanges(
            edited=len(edited), new=len(new_rows), removed=len(removed), file_changed=True
        )

    def remember(self, **values: str) -> None:
        """Keep a fact for the next run (e.g. the rate the account turned out to allow)."""
        self._set_meta(**values)

    def _set_meta(self, **values: str) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    # ---------------------------------------------------------------- runs
    def start_run(self) -> int:
        cur = self.db.execute("INSERT INTO runs (started_utc) VALUES (?)", (utc_now(),))
        self.run = int(cur.lastrowid or 0)
        return self.run

    def finish_run(
        self, requests: int, outcome: str, sent_minutes: dict[str, int] | None = None
    ) -> None:
        self.db.execute(
            "UPDATE runs SET finished_utc=?, requests=?, outcome=?, sent_minutes=? WHERE run=?",
            (utc_now(), requests, outcome, json.dumps(sent_minutes or {}), self.run),
        )

    def sent_minutes(self) -> list[tuple[str, int]]:
        """Every run's requests by minute: what this tool spent of the rolling window."""
        out: list[tuple[str, int]] = []
        for (text,) in self.db.execute(
            "SELECT sent_minutes FROM runs WHERE sent_minutes IS NOT NULL"
        ):
            out.extend(json.loads(text).items())
        return out

    def runs(self) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT run, started_utc, finished_utc, requests, outcome FROM runs ORDER BY run"
        )
        return [
            dict(zip(("run", "started_utc", "finished_utc", "requests", "outcome"), r, strict=True))
            for r in cur
        ]

    # ---------------------------------------------------------------- rows
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, kind: object, *rest: object) -> None:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")

    def transaction(self) -> Checkpoint._Tx:
        return Checkpoint._Tx(self.db)

    def register(self, rows: Iterable[tuple[int, int, str]]) -> None:
        """Every row of the file, once (row position, line, content digest)."""
        rows = list(rows)
        now = utc_now()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO rows (row, line, state, digest, updated_utc)"
                " VALUES (?, ?, 'planned', ?, ?)",
                ((r, line, digest, now) for r, line, digest in rows),
            )
            # a checkpoint of an earlier version: its rows get their digests now
            db.executemany(
                "UPDATE rows SET digest=? WHERE row=? AND digest IS NULL",
                ((digest, r) for r, _, digest in rows),
            )

    def states(self) -> dict[int, RowState]:
        cur = self.db.execute(
            "SELECT row, line, action, state, record_id, payload, sent_at, status, message, attempts FROM rows"
        )
        return {
            r[0]: RowState(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                json.loads(r[5]) if r[5] else None,
                r[6],
                r[7],
                r[8],
                r[9],
            )
            for r in cur
        }

    def mark_many(
        self,
        rows: Iterable[int],
        *,
        state: str,
        action: str | None = None,
        message: str | None = None,
    ) -> None:
        now = utc_now()
        with self.transaction() as db:
            db.executemany(
                "UPDATE rows SET state=?, action=COALESCE(?, action), message=?, updated_utc=?, run=? WHERE row=?",
                ((state, action, message, now, self.run, r) for r in rows),
            )

    def sending(
        self, row: int, action: str, payload: dict[str, Any], sent_at: str, record_id: int | None
    ) -> None:
        """Committed before the request leaves: from now on the outcome may be unknown."""
        self.db.execute(
            "UPDATE rows SET state='in_flight', action=?, payload=?, sent_at=?, record_id=COALESCE(?, record_id),"
            " attempts=attempts+1, updated_utc=?, run=?, status=NULL, message=NULL WHERE row=?",
            (
                action,
                redact(json.dumps(payload, ensure_ascii=False)),
                sent_at,
                record_id,
                utc_now(),
                self.run,
                row,
            ),
        )

    def done(
        self,
        row: int,
        action: str,
        record_id: int | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        message: str | None = None,
        stamp: str | None = None,
    ) -> None:
        """Done; an update keeps each changed field's value before and the value written.
        `message`: what of the write Insightly did not apply, if anything. `stamp`: the
        record's DATE_UPDATED_UTC as our write left it (undo: was it changed since?)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE rows SET state='done', action=?, record_id=?, status=NULL, message=?,"
                " updated_utc=?, run=?, created=CASE WHEN ?='create' THEN 1 ELSE created END,"
                " stamp=COALESCE(?, stamp) WHERE row=?",
                (action, record_id, message, utc_now(), self.run, action, stamp, row),
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
                            redact(json.dumps(v, ensure_ascii=False)),
                            self.run,
                            redact(json.dumps((after or {}).get(f), ensure_ascii=False)),
                        )
                        for f, v in before.items()
                    ),
                )

    def failed(self, row: int, status: int | None, message: str) -> None:
        self.db.execute(
            "UPDATE rows SET state='failed', status=?, message=?, updated_utc=?, run=? WHERE row=?",
            (status, message, utc_now(), self.run, row),
        )

    def unknown(self, row: int, message: str) -> None:
        self.db.execute(
            "UPDATE rows SET state='unknown', message=?, updated_utc=?, run=? WHERE row=?",
            (message, utc_now(), self.run, row),
        )

    def not_applied(self) -> int:
        """Done rows whose answer lacked a value they sent (see execute.NOT_APPLIED)."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM rows WHERE state='done' AND message LIKE 'not applied:%'"
            ).fetchone()[0]
        )

    def counts(self, *, created_first: bool = False) -> dict[tuple[str | None, str], int]:
        """Rows by (action, state): the last run's action, or with `created_first` "create"
        for every record an import created, whatever later runs did to it (status, undo)."""
        action = "CASE WHEN created=1 THEN 'create' ELSE action END" if created_first else "action"
        cur = self.db.execute(f"SELECT {action} AS a, state, COUNT(*) FROM rows GROUP BY a, state")
        return {(a, s): n for a, s, n in cur}

    def changes(self) -> dict[int, list[FieldChange]]:
        """Per row, each field an update changed: the value before the first run that changed
        it, and the value the last such run wrote (for undo)."""
        out: dict[int, list[FieldChange]] = {}
        cur = self.db.execute(
            "SELECT row, record_id, field, value, written FROM before_images WHERE row >= 0"
            " ORDER BY row, field, run"
        )
        seen: dict[tuple[int, str], FieldChange] = {}
        for row, rid, name, value, written in cur:
            before = json.loads(value) if value is not None else None
            after = json.loads(written) if written is not None else None
            earlier = seen.get((row, name))
            change = FieldChange(rid, name, earlier.before if earlier else before, after)
            seen[(row, name)] = change
        for (row, _), change in seen.items():
            out.setdefault(row, []).append(change)
        return out

    def created_rows(self) -> list[tuple[int, int, int, dict[str, Any] | None, str | None]]:
        """(row, line, record id, last body sent, stamp) of every record the import created."""
        cur = self.db.execute(
            "SELECT row, line, record_id, payload, stamp FROM rows"
            " WHERE created=1 AND record_id IS NOT NULL ORDER BY row"
        )
        return [(r, line, rid, json.loads(p) if p else None, st) for r, line, rid, p, st in cur]

    def created_row_numbers(self) -> set[int]:
        return {r for (r,) in self.db.execute("SELECT row FROM rows WHERE created=1")}

    def unsettled(self) -> int:
        """Rows whose write may or may not have happened."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM rows WHERE state IN ('in_flight', 'unknown')"
            ).fetchone()[0]
        )

    # ---------------------------------------------------------------- steps' journal
    def step_states(self) -> dict[tuple[int, str], StepState]:
        cur = self.db.execute(
            "SELECT row, step, want, record_id, action, state, status, message FROM steps"
        )
        return {(r[0], r[1]): StepState(*r) for r in cur}

    def step_sending(self, row: int, step: str, want: str, record_id: int, action: str) -> None:
        """Committed before the request leaves, like `sending`."""
        self.db.execute(
            "INSERT INTO steps (row, step, want, record_id, action, state, attempts, run,"
            " updated_utc) VALUES (?, ?, ?, ?, ?, 'in_flight', 1, ?, ?)"
            " ON CONFLICT (row, step) DO UPDATE SET want=excluded.want,"
            " record_id=excluded.record_id, action=excluded.action, state='in_flight',"
            " status=NULL, message=NULL, attempts=attempts+1, run=excluded.run,"
            " updated_utc=excluded.updated_utc",
            (row, step, want, record_id, action, self.run, utc_now()),
        )

    def step_settled(
        self,
        row: int,
        step: str,
        want: str,
        record_id: int,
        *,
        state: str,
        action: str,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        """done (`action` sent, or `already` so), failed or unknown."""
        self.db.execute(
            "INSERT INTO steps (row, step, want, record_id, action, state, status, message,"
            " run, updated_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (row, step) DO UPDATE SET want=excluded.want,"
            " record_id=excluded.record_id, action=excluded.action, state=excluded.state,"
            " status=excluded.status, message=excluded.message, run=excluded.run,"
            " updated_utc=excluded.updated_utc",
            (row, step, want, record_id, action, state, status, message, self.run, utc_now()),
        )

    def step_counts(self) -> dict[tuple[str | None, str], int]:
        try:
            cur = self.db.execute(
                "SELECT action, state, COUNT(*) FROM steps GROUP BY action, state"
            )
        except sqlite3.OperationalError:  # a checkpoint from before steps, read-only
            return {}
        return {(a, s): n for a, s, n in cur}

    # ---------------------------------------------------------------- undo's journal
    def undo_states(self) -> dict[int, str]:
        return {r: s for r, s in self.db.execute("SELECT row, state FROM undo")}

    def mark_undo(self, row: int, state: str, message: str | None = None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO undo VALUES (?, ?, ?, ?)", (row, state, message, utc_now())
        )

    def undo_summary(self) -> dict[str, int]:
        try:
            cur = self.db.execute("SELECT state, COUNT(*) FROM undo GROUP BY state")
        except sqlite3.OperationalError:  # a checkpoint from before undo existed, read-only
            return {}
        return {s: n for s, n in cur}
