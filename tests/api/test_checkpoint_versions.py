"""Checkpoints written by earlier versions keep working (tests/data/checkpoints/README.md), and
the schema refuses any state the code does not know."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import jsonschema
import pytest

from insightly_etl.errors import CheckpointError, ValidationError
from insightly_etl.load.checkpoint import VERSION, Checkpoint, FieldChange
from insightly_etl.load.history import read_history
from insightly_etl.load.states import Action, RowState, StepAction, StepState, UndoState
from insightly_etl.summary import schema
from tests.api.test_cli import run
from tests.api.test_import import MATCH_EMAIL, run_import, write, writes

DATA = Path(__file__).parent.parent / "data" / "checkpoints"


def legacy(tmp_path: Path, name: str, version: int = 0) -> Path:
    for suffix in (".sqlite", ".csv", ".yaml"):  # never SQLite's -shm and -wal side files
        if (part := DATA / f"v{version}-{name}{suffix}").exists():
            shutil.copy(part, tmp_path / part.name)
    return tmp_path / f"v{version}-{name}.sqlite"


def version(path: Path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_status_reads_a_version_0_checkpoint_without_changing_it(tmp_path: Path) -> None:
    path = legacy(tmp_path, "contacts")
    before = sha(path)
    result = run(None, "status", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:10] == [
        "  account: northwind-sandbox",
        "  rows, by their last write: 1 created, 2 updated, 0 unchanged, 1 rejected, "
        "0 duplicate, 0 skipped, 0 failed",
        "  rows, by the write that made or first changed their record (what undo reverses):",
        "  action     state          rows",
        "  create     done              2",
        "  update     done              1",
        "  -          rejected          1",
        "  2 run(s), 12 requests in all",
        "  last run: 2026-12-03 12:12:55 -> 2026-12-03 12:12:55, 5 requests, finished",
    ]
    assert (sha(path), version(path)) == (before, 0)


def test_opening_a_version_0_checkpoint_for_a_run_migrates_it_keeping_everything(
    tmp_path: Path,
) -> None:
    path = legacy(tmp_path, "contacts")
    cp = Checkpoint(path)
    try:
        states = cp.rows.states()
        assert [(s.line, s.action, s.state, s.record_id) for s in states.values()] == [
            (2, Action.CREATE, RowState.DONE, 2221),
            (3, Action.UPDATE, RowState.DONE, 2222),
            (4, Action.UPDATE, RowState.DONE, 2001),
            (5, None, RowState.REJECTED, None),
        ]
        assert [s.created for s in states.values()] == [True, True, False, False]  # NULL is 0
        assert cp.rows.changes() == {
            1: [FieldChange(2222, "FIRST_NAME", "Bob", "Robert")],
            2: [FieldChange(2001, "TITLE", "Office Manager", "Chief Legacy Officer")],
        }
        assert [r["outcome"] for r in cp.runs()] == ["finished", "finished"]
        assert cp.rows.not_applied() == 0
    finally:
        cp.close()
    assert version(path) == VERSION


def test_the_steps_and_undo_journals_of_a_version_0_checkpoint_survive(tmp_path: Path) -> None:
    cp = Checkpoint(legacy(tmp_path, "deals"))
    try:
        assert cp.steps.counts() == {
            (StepAction.ALREADY, StepState.DONE): 1,
            (StepAction.PIPELINE, StepState.DONE): 4,
            (StepAction.STATE, StepState.DONE): 2,
        }
        assert cp.undo.summary() == {UndoState.CONFLICT: 2, UndoState.DELETED: 2}
    finally:
        cp.close()


def test_a_rerun_on_a_version_0_checkpoint_resumes_and_sends_nothing_again(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    path = legacy(tmp_path, "contacts")
    result = run(
        sb,
        "import",
        str(tmp_path / "v0-contacts.csv"),
        "--mapping",
        str(tmp_path / "v0-contacts.yaml"),
        "--checkpoint",
        str(path),
        "--quiet",
    )
    assert result.exit_code == 1, result.output  # the rejected row is still rejected
    assert result.stdout.startswith(
        "v0-contacts.csv -> contacts: 1 created, 2 updated, 0 unchanged, 1 rejected, "
        "0 duplicate, 0 skipped, 0 failed (this run: 0 created, 0 updated); "
    )
    assert writes(sb) == 0 and version(path) == VERSION


def test_a_checkpoint_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = legacy(tmp_path, "contacts")
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {VERSION + 1}")
    before = sha(path)
    with pytest.raises(CheckpointError) as info:
        Checkpoint(path)
    assert str(info.value) == (
        f"{path} was written by a newer insightly-etl (checkpoint version {VERSION + 1}; this "
        f"one reads up to {VERSION})"
    )
    assert sha(path) == before and not (tmp_path / "v0-contacts.sqlite.lock").exists()


def test_a_state_the_code_does_not_know_cannot_be_written(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "new.sqlite")
    try:
        cp.rows.register([(0, 2, "digest")])
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            cp.db.execute("UPDATE rows SET state='sent' WHERE row=0")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            cp.db.execute("UPDATE rows SET action='upsert' WHERE row=0")
        assert version(tmp_path / "new.sqlite") == VERSION
    finally:
        cp.close()


def test_a_version_0_file_holding_a_state_no_version_wrote_is_refused_untouched(
    tmp_path: Path,
) -> None:
    path = legacy(tmp_path, "contacts")
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE rows SET state='sent' WHERE row=0")
        db.commit()
    before = sha(path)
    with pytest.raises(CheckpointError) as info:
        Checkpoint(path)
    assert str(info.value).startswith(
        f"{path} cannot be brought to checkpoint version {VERSION} (CHECK constraint failed"
    )
    assert sha(path) == before and version(path) == 0


# The schema each version has: a change to SCHEMA (a column, a CHECK list grown by a new state)
# must come with a new VERSION and its migration, or files written by the old schema would
# refuse the new values. Record the new digest here when you add one.
SCHEMA_DIGESTS = {
    1: "29b978d546244dc8",
    2: "1a3ed7d8e3ac3f28",
    3: "980238583653fd6b",
    4: "276945c260a47348",
}


def test_the_schema_changes_only_with_its_version() -> None:
    from insightly_etl.load.checkpoint.store import SCHEMA

    assert hashlib.sha256(SCHEMA.encode()).hexdigest()[:16] == SCHEMA_DIGESTS[VERSION]


def test_a_checkpoint_from_before_created_was_kept_still_knows_what_it_created(
    tmp_path: Path,
) -> None:
    """Releases before the `created` column: a done create is a record the import created, so
    undo still deletes it."""
    path = legacy(tmp_path, "contacts")
    with closing(sqlite3.connect(path)) as db:
        db.execute("ALTER TABLE rows DROP COLUMN created")
        db.commit()
    cp = Checkpoint(path)
    try:
        assert [c.record_id for c in cp.rows.created()] == [2221]  # row 0: create, done
    finally:
        cp.close()


def test_a_version_1_checkpoint_is_read_as_it_was_and_migrated_keeping_its_runs(
    make_sandbox, tmp_path: Path
) -> None:
    """Version 1 said "quota" for a --max-requests stop and kept no kind of run: status reads
    it unchanged, and the next run migrates it, its old runs in their old words."""
    path = legacy(tmp_path, "contacts", version=1)
    before = sha(path)
    status = run(None, "status", str(path))
    assert status.exit_code == 0, status.output
    assert status.stdout.splitlines()[8:10] == [
        "  3 run(s), 12 requests in all",
        "  last run: 2026-12-04 12:29:09 -> 2026-12-04 12:29:09, 1 requests, finished",
    ]
    assert (sha(path), version(path)) == (before, 1)
    sb = make_sandbox()
    again = run(
        sb,
        "import",
        str(tmp_path / "v1-contacts.csv"),
        "--mapping",
        str(tmp_path / "v1-contacts.yaml"),
        "--checkpoint",
        str(path),
        "--quiet",
    )
    assert again.exit_code == 1, again.output  # the rejected row is still rejected
    assert writes(sb) == 0 and version(path) == VERSION == 4
    cp = Checkpoint(path)
    try:
        assert [(r["outcome"], r["kind"]) for r in cp.runs()] == [
            ("quota", None),
            ("finished", None),
            ("finished", None),
            ("finished", "import"),
        ]
        assert [(s.line, s.state) for s in cp.rows.states().values()] == [
            (2, RowState.DONE),
            (3, RowState.DONE),
            (4, RowState.DONE),
            (5, RowState.REJECTED),
        ]
    finally:
        cp.close()


def test_a_run_records_its_kind_and_which_limit_stopped_it(make_sandbox, tmp_path: Path) -> None:
    """A --max-requests stop is `budget` in the checkpoint, as in the live --summary-json;
    reconcile and undo runs say what they were, and status's summary of the import reads the
    import's own last run, not a reconcile's since."""
    sb = make_sandbox()
    path = legacy(tmp_path, "contacts", version=1)
    path.unlink()
    csv, mapping = tmp_path / "v1-contacts.csv", tmp_path / "v1-contacts.yaml"
    args = ("import", str(csv), "--mapping", str(mapping), "--checkpoint", str(path), "--quiet")
    stopped = run(sb, *args, "--max-requests", "5")
    assert stopped.exit_code == 75, stopped.output
    assert run(sb, "reconcile", str(path)).exit_code == 0
    cp = Checkpoint(path)
    try:
        assert [(r["outcome"], r["kind"]) for r in cp.runs()] == [
            ("budget", "import"),
            ("finished", "reconcile"),
        ]
    finally:
        cp.close()
    status = run(None, "status", str(path))
    assert next(line for line in status.stdout.splitlines() if "last run" in line).startswith(
        "  last run (reconcile): "
    )
    as_json = json.loads(run(None, "status", str(path), "--json").stdout)
    assert [(r["outcome"], r["kind"]) for r in as_json["runs"]] == [
        ("budget", "import"),
        ("finished", "reconcile"),
    ]
    summary = read_history(path).summary()  # the report's
    assert (summary.stop_reason, summary.exit_code) == ("budget", 75)


class _SearchDownAfterFirstCreate(httpx.AsyncBaseTransport):
    """The sandbox, whose /Search answers 400 once a record was created."""

    def __init__(self, sb) -> None:
        self.inner, self.created = httpx.ASGITransport(app=sb.app), False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.created and request.url.path.endswith("/Search"):
            return httpx.Response(400, json={"Message": "search is down"})
        response = await self.inner.handle_async_request(request)
        self.created |= request.method == "POST" and response.is_success
        return response


@pytest.mark.anyio
async def test_a_run_that_ends_in_an_error_after_a_write_says_so(
    make_sandbox, tmp_path: Path
) -> None:
    """Its error is the one said (it was replaced by the checkpoint refusing the outcome
    `error`: sqlite3.IntegrityError), its runs row says `error`, and so does status."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    await run_import(sb, write(tmp_path, "a.csv", "Name,Email\nAda,ada@e.example\n"), mapping)
    rows = "Name,Email\nNew,new@e.example\nBob,bob@e.example\nAda B,ada@e.example\n"
    file = write(tmp_path, "b.csv", rows)
    with pytest.raises(ValidationError) as raised:
        await run_import(sb, file, mapping, transport=_SearchDownAfterFirstCreate, batch_size=1)
    assert str(raised.value).endswith("HTTP 400: search is down")
    path = tmp_path / "b.csv.checkpoint.sqlite"
    cp = Checkpoint.read_only(path)
    try:
        assert [r["outcome"] for r in cp.runs()] == ["error"]
        assert cp.rows.written() == [(0, cp.rows.written()[0][1], True)]  # New: created
    finally:
        cp.close()
    summary = read_history(path).summary()
    assert (summary.stop_reason, summary.exit_code, summary.error) == (
        "error",
        1,
        "the last run ended in an error, after it had sent writes",
    )
    status = run(None, "status", str(path))
    assert status.stdout.splitlines()[-1].endswith(", error"), status.output
    as_json = json.loads(run(None, "status", str(path), "--json").stdout)
    jsonschema.validate(as_json, schema("status"))
    assert [r["outcome"] for r in as_json["runs"]] == ["error"]


class _Watched(httpx.AsyncBaseTransport):
    """The sandbox; at its 30th create, what the checkpoint's runs say (another connection,
    as `status` beside a run that is then killed)."""

    def __init__(self, sb) -> None:
        self.inner, self.creates, self.seen = httpx.ASGITransport(app=sb.app), 0, None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.creates += request.method == "POST"
        if self.creates == 30 and self.seen is None:
            path = self.checkpoint
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                self.seen = db.execute("SELECT requests, sent_minutes FROM runs").fetchall()
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_a_run_notes_its_requests_as_it_sends(
    make_sandbox, tmp_path: Path, monkeypatch
) -> None:
    """A run killed midway said 0 requests: they are noted as it sends (here at every write;
    SPENT_EVERY seconds apart in a run), so status and the quota's window count them."""
    import insightly_etl.load.execute as execute

    monkeypatch.setattr(execute, "SPENT_EVERY", 0.0)
    sb = make_sandbox()
    file = write(tmp_path, "b.csv", "Name\n" + "".join(f"N{i}\n" for i in range(40)))
    mapping = write(tmp_path, "m.yaml", "object: contacts\ncolumns:\n  Name: FIRST_NAME\n")
    watched: list[_Watched] = []

    def front(sb) -> _Watched:
        watched.append(_Watched(sb))
        watched[0].checkpoint = tmp_path / "b.csv.checkpoint.sqlite"
        return watched[0]

    result = await run_import(sb, file, mapping, transport=front, batch_size=1)
    ((requests, minutes),) = watched[0].seen
    assert 28 <= requests < result.requests  # planning's and the writes' so far, before the end
    assert sum(json.loads(minutes).values()) == requests
