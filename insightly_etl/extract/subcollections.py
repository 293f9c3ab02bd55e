"""Per-record sub-collections: `export --with links,state_history`.

What only `GET /{Object}/{id}/{Sub}` returns costs one request per parent record (docs/api.md
§2.2; since v3.0 a record's GET need not carry its links), so it is exported only when asked.
Before any of it, one `count_total` probe per parent object type tells how many records there
are; the cost is announced, and the run refuses to start when it would cross what is left of the
day's allowance minus the reserve. The parents' ids come from the object files this run wrote.

    links          every link of every record of the exported object types that have links
                   -> links.parquet (instead of the one built from record bodies)
    state_history  every opportunity's state changes -> state_history.parquet
    comments       the comments of every email, note, task and ticket -> comments.parquet
    emails         which emails each contact, lead, opportunity, organisation and project has
                   -> record_emails.parquet (the emails themselves are in emails.parquet)
    files          every record's file attachments (name, type, size …) -> file_attachments.parquet;
                   with a files directory, each file's content too, named by its id (one more
                   request per file; a file already there at its size costs none: a run that
                   stopped resumes the downloads)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.api.client import InsightlyClient
from insightly_etl.api.registry import OBJECTS, ObjectType, record_id
from insightly_etl.api.tasks import gather_all
from insightly_etl.errors import (
    ApiError,
    ForbiddenError,
    InputError,
    NotFoundError,
    QuotaExhausted,
    ReserveReached,
)
from insightly_etl.extract.writers import open_writer, read_earlier, table_file, write_atomic
from insightly_etl.moments import DATETIME_FORMAT, changed_after, second_before
from insightly_etl.progress import Progress

LINKS_SCHEMA = pa.schema(  # links.parquet: from record bodies, or per record (--with links)
    [
        pa.field("object", pa.string(), nullable=False),  # the record's object type
        pa.field("id", pa.int64(), nullable=False),  # the record's id
        pa.field("link_id", pa.int64()),
        pa.field("linked_object", pa.string()),  # as Insightly names it: Contact, Organisation
        pa.field("linked_id", pa.int64()),
        pa.field("role", pa.string()),
        pa.field("details", pa.string()),
        pa.field("relationship_id", pa.int64()),
        pa.field("is_forward", pa.bool_()),
    ]
)
FILES_SCHEMA = pa.schema(
    [
        pa.field("object", pa.string(), nullable=False),  # the record the file is attached to
        pa.field("id", pa.int64(), nullable=False),
        pa.field("file_id", pa.int64()),
        pa.field("file_name", pa.string()),  # as Insightly has it (never used as a path)
        pa.field("content_type", pa.string()),
        pa.field("file_size", pa.int64()),
        pa.field("file_category_id", pa.int64()),
        pa.field("owner_user_id", pa.int64()),
        pa.field("date_created_utc", pa.timestamp("ms", tz="UTC")),
        pa.field("date_updated_utc", pa.timestamp("ms", tz="UTC")),
        pa.field("url", pa.string()),
        pa.field("local_file", pa.string()),  # its name in the files directory, once downloaded
    ]
)
COMMENTS_SCHEMA = pa.schema(
    [
        pa.field("object", pa.string(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("comment_id", pa.int64()),
        pa.field("owner_user_id", pa.int64()),
        pa.field("body", pa.string()),
        pa.field("date_created_utc", pa.timestamp("ms", tz="UTC")),
        pa.field("date_updated_utc", pa.timestamp("ms", tz="UTC")),
        # the whole answer item as JSON: the swagger's Comment lists only its id and owner, so
        # whatever else the API sends is kept rather than guessed at
        pa.field("item", pa.string()),
    ]
)
UNREADABLE = "_unreadable.parquet"  # records whose sub-collection the API user may not read
UNREADABLE_SCHEMA = pa.schema(
    [
        pa.field("object", pa.string(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("collection", pa.string(), nullable=False),  # as --with names it
        pa.field("status", pa.int64()),
        pa.field("message", pa.string()),  # Insightly's own words
    ]
)
# A 403 on one record's sub-collection is that record's (the swagger: "API User does not have
# access to Record."). When the first records of an object and as many more from across the
# list all answer 403, the whole sub-collection is closed to this user (a plan or a
# permission), and reading on would spend a request per record for nothing: the run's error.
FIRST_CHUNK = 10
RECORD_EMAILS_SCHEMA = pa.schema(
    [
        pa.field("object", pa.string(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("email_id", pa.int64()),
    ]
)
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
STATE_HISTORY_SCHEMA = pa.schema(
    [
        pa.field("opportunity_id", pa.int64(), nullable=False),
        pa.field("date_changed_utc", pa.timestamp("ms", tz="UTC")),
        pa.field("state", pa.string()),
        pa.field("state_reason_id", pa.int64()),
        pa.field("state_reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class SubCollection:
    name: str  # as --with names it
    path: str  # after /{Object}/{id}/
    stem: str  # the file's name without its extension


SUBCOLLECTIONS = {
    "links": SubCollection("links", "Links", "links"),
    "state_history": SubCollection("state_history", "StateHistory", "state_history"),
    "files": SubCollection("files", "FileAttachments", "file_attachments"),
    "comments": SubCollection("comments", "Comments", "comments"),
    "emails": SubCollection("emails", "Emails", "record_emails"),
}
SCHEMAS = {
    "links": LINKS_SCHEMA,
    "state_history": STATE_HISTORY_SCHEMA,
    "files": FILES_SCHEMA,
    "comments": COMMENTS_SCHEMA,
    "emails": RECORD_EMAILS_SCHEMA,
}


def parse_with(text: str | None) -> list[str]:
    """`links,state_history` -> the names, checked."""
    names = [n.strip().lower() for n in (text or "").split(",") if n.strip()]
    for name in names:
        if name not in SUBCOLLECTIONS:
            raise InputError(
                f"--with {name!r}: not a per-record collection this tool exports",
                hint=f"Choose from: {', '.join(SUBCOLLECTIONS)}.",
            )
    return list(dict.fromkeys(names))


def parents_of(sub: str, exported: list[str]) -> list[ObjectType]:
    """The exported object types whose records have this sub-collection."""
    return [OBJECTS[n] for n in exported if n in OBJECTS and sub in OBJECTS[n].sub_collections]


@dataclass
class SubPlan:
    """What `--with` will cost: requests per (sub-collection, parent object)."""

    parts: dict[tuple[str, str], int] = field(default_factory=dict)
    changed: set[tuple[str, str]] = field(default_factory=set)  # parts read incrementally
    probes: int = 0  # the count requests spent to know it
    remaining: int | None = None  # the day's allowance left, as the probes' answers said
    reserve: int = 0

    @property
    def cost(self) -> int:
        return sum(self.parts.values())

    downloads: bool = False  # files: their content too, a request each

    def describe(self) -> str:
        parts = ", ".join(
            f"{sub} of {n:,} {'changed ' if (sub, obj) in self.changed else ''}{obj}"
            for (sub, obj), n in self.parts.items()
        )
        left = f"{self.remaining:,}" if self.remaining is not None else "unknown"
        more = ", plus one per file not yet downloaded" if self.downloads else ""
        return (
            f"--with costs about {self.cost:,} request(s), one per record ({parts or 'none'})"
            f"{more}; {left} left today, reserve {self.reserve:,}"
        )


async def plan_subcollections(
    client: InsightlyClient,
    subs: list[str],
    exported: list[str],
    *,
    downloads: bool = False,
    since: dict[tuple[str, str], datetime] | None = None,
) -> SubPlan:
    """Count the parent records (one request per object type) and refuse a run that would
    cross the quota minus the reserve. A part read incrementally (`since`: when the
    sub-collection was last read for that object's records) counts the records changed since."""
    plan = SubPlan(reserve=client.reserve, downloads=downloads and "files" in subs)
    for sub in subs:
        parents = parents_of(sub, exported)
        if not parents:
            need = {
                "state_history": "opportunities",
                "files": "object type with file attachments",
                "comments": "object type with comments (emails, notes, tasks, tickets)",
                "emails": "object type with emails",
            }.get(sub, "object type with links")
            raise InputError(
                f"--with {sub}: the export names no {need}",
                hint="Export the parent object type too (or none: every one).",
            )
        for obj in parents:
            params = {"top": 1, "count_total": "true"} | ({"brief": "true"} if obj.brief else {})
            path = obj.endpoint
            if since and (when := since.get((sub, obj.name))) is not None:
                path = f"{obj.endpoint}/Search"
                params["updated_after_utc"] = changed_after(when)
                plan.changed.add((sub, obj.name))
            reply = await client.get(path, params)
            plan.probes += 1
            total = reply.total if reply.total is not None else len(reply.data or [])
            plan.parts[(sub, obj.name)] = total
    plan.remaining = client.quota.remaining
    limits: dict[str, int] = {}  # what this run may spend, by what limits it
    if plan.remaining is not None:
        limits["quota"] = plan.remaining - plan.reserve
    if client.max_requests is not None:
        limits["budget"] = client.max_requests - client.stats.sent
    if limits and plan.cost > min(limits.values()):
        which = min(limits, key=lambda k: limits[k])
        message = (
            f"{plan.describe()}: more than this run may spend ({max(0, limits[which]):,}); "
            "nothing was exported"
        )
        fewer = "Name fewer object types"
        if which == "budget":
            # the run's own --max-requests, which every run spends as much of before: no
            # later run can (exit 2), not a wait for the quota (75, forever)
            raise InputError(
                message,
                hint=f"{fewer}, or give --max-requests of at least "
                f"{client.stats.sent + plan.cost:,} (the objects' own pages come on top).",
            )
        day = client.quota.limit
        if day is not None and client.stats.sent + plan.cost > day - plan.reserve:
            raise InputError(  # not in a whole day's allowance either
                f"{plan.describe()}: more than this run may spend "
                f"({max(0, limits[which]):,}), or a whole day's ({day:,} less --reserve "
                f"{plan.reserve:,}); nothing was exported",
                hint=f"{fewer}, or export them with --with in separate runs.",
            )
        stop = ReserveReached if plan.reserve else QuotaExhausted
        raise stop(
            message,
            hint=f"{fewer}, or run when the rolling 24-hour window has freed enough "
            "(insightly-etl export without --with costs a request per 500 records).",
        )
    return plan


@dataclass(frozen=True)
class Parent:
    """An object type whose records' sub-collection is read, from its file in this export."""

    obj: ObjectType
    path: Path
    # an incremental run: only these records are read again; the others keep their rows of the
    # earlier file (a record deleted since loses them)
    only: frozenset[int] | None = None
    ids: list[int] | None = None  # every record of the file, in order (None: read the file)


class SubFetcher:
    """Fetches one sub-collection for every record of the parents' files and writes it."""

    def __init__(
        self,
        client: InsightlyClient,
        out_dir: Path,
        progress: Progress,
        files_dir: Path | None = None,
        files_present: Mapping[str, int] | None = None,
        layout: str = "flat",
    ) -> None:
        self.layout = layout
        self.client, self.out_dir, self.progress = client, out_dir, progress
        self.files_dir = files_dir
        self.files_present = files_present or {}  # in object storage already: name -> size
        self.failed_downloads: list[str] = []  # "file 901 (signed-nda.pdf): why"
        self.size_mismatches: list[str] = []  # downloaded, of another size than listed
        self.unreadable: list[dict[str, Any]] = []  # UNREADABLE_SCHEMA rows
        self.read = 0  # records whose sub-collection this run read

    async def fetch(self, sub: str, parents: list[Parent]) -> tuple[str, int]:
        """(file name, rows): every parent record's sub-collection, written atomically."""
        spec = SUBCOLLECTIONS[sub]
        rows: list[dict[str, Any]] = []
        earlier = self._earlier(sub, parents)
        for parent in parents:
            obj, path = parent.obj, parent.path
            ids = parent.ids if parent.ids is not None else _ids(path, obj)
            if parent.only is not None:  # the rest keep what the earlier run read
                kept = set(ids) - parent.only
                ids = sorted(set(ids) & parent.only)
                keep = {(obj.name, i) for i in kept}
                rows.extend(r for r in earlier[0] if _parent(r) in keep)
                self.unreadable.extend(
                    r
                    for r in earlier[1]
                    if (r["collection"], r["object"]) == (sub, obj.name) and r["id"] in kept
                )
            self.read += len(ids)
            self.progress.start(f"{obj.name}: {sub}", total=len(ids), unit="record")
            try:
                denied: list[bool] = []  # per probe chunk: every answer a 403
                found: dict[int, list[dict[str, Any]] | ForbiddenError] = {}
                for n, chunk in enumerate(_chunks(ids)):
                    answers = await gather_all(*(self._all(obj, i, spec) for i in chunk))
                    found.update(zip(chunk, answers, strict=True))
                    self.progress.advance(len(chunk))
                    if n < 2:  # the first ten, then ten from across the list
                        denied.append(all(isinstance(a, ForbiddenError) for a in answers))
                    if n == 1 and all(denied):
                        refusal = found[ids[0]]
                        assert isinstance(refusal, ForbiddenError)
                        raise ForbiddenError(
                            f"{refusal.message} So did the first {FIRST_CHUNK} {obj.name} and "
                            f"{len(chunk)} more from across the list: this user may read none "
                            f"of their {spec.path}",
                            status=refusal.status,
                            method=refusal.method,
                            path=refusal.path,
                        )
                for rid in ids:
                    items = found[rid]
                    if isinstance(items, ForbiddenError):
                        self.unreadable.append(_unreadable(obj, rid, sub, items))
                    else:
                        rows.extend(_row(sub, obj, rid, item) for item in items)
            finally:
                self.progress.finish()
        # by parent, then record id: kept and newly read rows alike (the sort is stable, so a
        # record's items keep the API's order)
        order = {p.obj.name: n for n, p in enumerate(parents)}
        rows.sort(key=lambda r: (order[_parent(r)[0]], _parent(r)[1]))
        schema = SCHEMAS[sub]
        name = table_file(spec.stem, "parquet", self.layout)
        (self.out_dir / name).parent.mkdir(exist_ok=True)
        try:
            if sub == "files" and self.files_dir is not None:
                await self._download(rows)
        finally:  # what is known is written, even when the downloads stop for the quota
            writer = open_writer(self.out_dir / name, schema, "parquet")
            table = pa.Table.from_pylist(rows, schema=schema)
            for batch in table.combine_chunks().to_batches():
                writer.write(batch)
            writer.commit()
        return name, table.num_rows

    async def _download(self, rows: list[dict[str, Any]]) -> None:
        """Each file's content into the files directory as FILE_ID.ext (the extension only
        when it is plain letters and digits: a file's name is never a path here)."""
        assert self.files_dir is not None
        self.files_dir.mkdir(parents=True, exist_ok=True)
        todo = [r for r in rows if r["file_id"] is not None]
        if unnamed := len(rows) - len(todo):  # a server's FILE_ID that is no id
            self.failed_downloads.append(
                f"{unnamed:,} file(s) without a FILE_ID that is a whole number from 1 up"
            )
        self.progress.start("file contents", total=len(todo), unit="file")
        try:
            for start in range(0, len(todo), 50):
                chunk = todo[start : start + 50]
                await gather_all(*(self._one_file(r) for r in chunk))
                self.progress.advance(len(chunk))
        finally:
            self.progress.finish()

    async def _one_file(self, row: dict[str, Any]) -> None:
        assert self.files_dir is not None
        suffix = os.path.splitext(row["file_name"] or "")[1]
        local = f"{row['file_id']}{suffix if _SUFFIX.match(suffix) else ''}"
        target = self.files_dir / local
        size = row["file_size"] or 0
        if (target.is_file() and target.stat().st_size == size) or self.files_present.get(
            local
        ) == size:
            row["local_file"] = local  # downloaded by an earlier run
            return
        try:
            content = await self.client.download(f"FileAttachments/{row['file_id']}")
        except ApiError as exc:  # a quota stop or Ctrl-C is a RunStopped and goes on up
            self.failed_downloads.append(
                f"file {row['file_id']}: {exc.message} (HTTP {exc.status or '?'})"
            )
            return
        write_atomic(target, content)
        row["local_file"] = local
        if row["file_size"] is not None and len(content) != row["file_size"]:
            self.size_mismatches.append(
                f"file {row['file_id']}: {len(content):,} byte(s) came, its FILE_SIZE says "
                f"{row['file_size']:,}; kept, and fetched again by each run (its size is how a "
                "run knows a file it has)"
            )

    async def _all(
        self, obj: ObjectType, rid: int, spec: SubCollection
    ) -> list[dict[str, Any]] | ForbiddenError:
        """One record's items, paged at 500 like any list (most need one request); the 403
        of a record the API user may not see, as a value."""
        try:
            return await self.client.get_all(f"{obj.endpoint}/{rid}/{spec.path}")
        except NotFoundError as exc:
            if not exc.from_api:  # a gateway's page: the record's list is not known empty
                raise
            return []  # deleted since its object was exported
        except ForbiddenError as exc:
            return exc

    def _earlier(
        self, sub: str, parents: list[Parent]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The earlier run's rows of this sub-collection and its refusals, when a parent is
        read incrementally (else nothing is kept: every record is read again)."""
        if all(p.only is None for p in parents):
            return [], []
        path = self.out_dir / table_file(SUBCOLLECTIONS[sub].stem, "parquet", self.layout)
        rows = read_earlier(path).cast(SCHEMAS[sub]).to_pylist() if path.exists() else []
        refused = self.out_dir / UNREADABLE
        unreadable = read_earlier(refused).to_pylist() if refused.exists() else []
        return rows, unreadable

    def write_unreadable(self) -> int:
        """`_unreadable.parquet`: this run's records whose sub-collections were refused (the
        file of an earlier run goes when none were)."""
        path = self.out_dir / UNREADABLE
        if not self.unreadable:
            path.unlink(missing_ok=True)
            return 0
        writer = open_writer(path, UNREADABLE_SCHEMA, "parquet")
        table = pa.Table.from_pylist(self.unreadable, schema=UNREADABLE_SCHEMA)
        for batch in table.combine_chunks().to_batches():
            writer.write(batch)
        writer.commit()
        return table.num_rows


def _chunks(ids: list[int]) -> list[list[int]]:
    """The order records are read in: the first FIRST_CHUNK, then FIRST_CHUNK spread across
    the rest (a run of private records at the start is not the whole list), then the rest in
    chunks of 200."""
    head, rest = ids[:FIRST_CHUNK], ids[FIRST_CHUNK:]
    step = max(1, len(rest) // FIRST_CHUNK)
    spread = rest[::step][:FIRST_CHUNK]
    chosen = set(spread)
    rest = [i for i in rest if i not in chosen]
    return [c for c in [head, spread, *(rest[k : k + 200] for k in range(0, len(rest), 200))] if c]


def _unreadable(obj: ObjectType, rid: int, sub: str, exc: ForbiddenError) -> dict[str, Any]:
    return {
        "object": obj.name,
        "id": rid,
        "collection": sub,
        "status": exc.status,
        "message": exc.message,
    }


def changed_ids(table: pa.Table, obj: ObjectType, mark: datetime) -> frozenset[int]:
    """Of the records this run exported (`table`: their ids and DATE_UPDATED_UTC), those changed
    since `mark`: new ones too. No request."""
    assert obj.id_field is not None
    if obj.updated_field not in table.column_names:
        return frozenset(i for i in table[obj.id_field].to_pylist() if i is not None)
    stamps = table[obj.updated_field]
    after = pa.scalar(second_before(mark), type=pa.timestamp("ms", tz="UTC"))
    if not pa.types.is_timestamp(stamps.type):
        return frozenset(i for i in table[obj.id_field].to_pylist() if i is not None)
    hit = pc.or_kleene(pc.greater(stamps.cast(after.type), after), pc.is_null(stamps))
    return frozenset(i for i in table.filter(hit)[obj.id_field].to_pylist() if i is not None)


def _parent(row: dict[str, Any]) -> tuple[str, int]:
    """The record a sub-collection row belongs to (state history names only its opportunity)."""
    if "opportunity_id" in row and "object" not in row:
        return "opportunities", row["opportunity_id"]
    return row["object"], row["id"]


def _ids(path: Path, obj: ObjectType) -> list[int]:
    assert obj.id_field is not None
    if not path.exists():
        return []
    column = read_earlier(path, [obj.id_field], key=obj.id_field, of=obj.name)[
        obj.id_field
    ].to_pylist()
    return sorted({i for i in column if i is not None})


def _row(sub: str, obj: ObjectType, rid: int, item: dict[str, Any]) -> dict[str, Any]:
    if sub == "comments":
        return {
            "object": obj.name,
            "id": rid,
            "comment_id": _int(item.get("COMMENT_ID")),
            "owner_user_id": _int(item.get("OWNER_USER_ID")),
            "body": _text(item.get("BODY")),
            "date_created_utc": _instant(item.get("DATE_CREATED_UTC")),
            "date_updated_utc": _instant(item.get("DATE_UPDATED_UTC")),
            "item": json.dumps(item, ensure_ascii=False, default=str),
        }
    if sub == "emails":
        return {"object": obj.name, "id": rid, "email_id": _int(item.get("EMAIL_ID"))}
    if sub == "files":
        return {
            "object": obj.name,
            "id": rid,
            "file_id": _int(item.get("FILE_ID")),
            "file_name": _text(item.get("FILE_NAME")),
            "content_type": _text(item.get("CONTENT_TYPE")),
            "file_size": _int(item.get("FILE_SIZE")),
            "file_category_id": _int(item.get("FILE_CATEGORY_ID")),
            "owner_user_id": _int(item.get("OWNER_USER_ID")),
            "date_created_utc": _instant(item.get("DATE_CREATED_UTC")),
            "date_updated_utc": _instant(item.get("DATE_UPDATED_UTC")),
            "url": _text(item.get("URL")),
            "local_file": None,
        }
    if sub == "state_history":
        return {
            "opportunity_id": rid,
            "date_changed_utc": _instant(item.get("DATE_CHANGED_UTC")),
            "state": _text(item.get("FOR_OPPORTUNITY_STATE")),
            "state_reason_id": _int(item.get("STATE_REASON_ID")),
            "state_reason": _text(item.get("STATE_REASON")),
        }
    return {
        "object": obj.name,
        "id": rid,
        "link_id": _int(item.get("LINK_ID")),
        "linked_object": _text(item.get("LINK_OBJECT_NAME")),
        "linked_id": _int(item.get("LINK_OBJECT_ID")),
        "role": _text(item.get("ROLE")),
        "details": _text(item.get("DETAILS")),
        "relationship_id": _int(item.get("RELATIONSHIP_ID")),
        "is_forward": item.get("IS_FORWARD") if isinstance(item.get("IS_FORWARD"), bool) else None,
    }


def _int(value: Any) -> int | None:
    """An id as an integer; anything else (text, a float, beyond int64) is no value."""
    rid = record_id({"v": value}, "v")
    return rid if rid is not None and -(2**63) <= rid < 2**63 else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value)[:19], DATETIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
