"""Per-record sub-collections: `export --with links,state_history`.

What only `GET /{Object}/{id}/{Sub}` returns costs one request per parent record (reference
§2.2; since v3.0 a record's GET need not carry its links), so it is exported only when asked.
Before any of it, one `count_total` probe per parent object type tells how many records there
are; the cost is announced, and the run refuses to start when it would cross what is left of the
day's allowance minus the reserve. The parents' ids come from the object files this run wrote.

    links          every link of every record of the exported object types that have links
                   -> links.parquet (instead of the one built from record bodies)
    state_history  every opportunity's state changes -> state_history.parquet
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from insightly_etl.api.client import PAGE_SIZE, InsightlyClient
from insightly_etl.api.registry import LINKABLE, OBJECTS, ObjectType, record_id
from insightly_etl.errors import InputError, NotFoundError, ReserveReached
from insightly_etl.extract.writers import open_writer
from insightly_etl.files import DATETIME_FORMAT
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
    if sub == "state_history":
        return [OBJECTS["opportunities"]] if "opportunities" in exported else []
    return [OBJECTS[n] for n in exported if n in LINKABLE]


@dataclass
class SubPlan:
    """What `--with` will cost: requests per (sub-collection, parent object)."""

    parts: dict[tuple[str, str], int] = field(default_factory=dict)
    probes: int = 0  # the count requests spent to know it
    remaining: int | None = None  # the day's allowance left, as the probes' answers said
    reserve: int = 0

    @property
    def cost(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        parts = ", ".join(f"{sub} of {n:,} {obj}" for (sub, obj), n in self.parts.items())
        left = f"{self.remaining:,}" if self.remaining is not None else "unknown"
        return (
            f"--with costs about {self.cost:,} request(s), one per record ({parts or 'none'}); "
            f"{left} left today, reserve {self.reserve:,}"
        )


async def plan_subcollections(
    client: InsightlyClient, subs: list[str], exported: list[str]
) -> SubPlan:
    """Count the parent records (one request per object type) and refuse a run that would
    cross the quota minus the reserve."""
    plan = SubPlan(reserve=client.reserve)
    for sub in subs:
        parents = parents_of(sub, exported)
        if not parents:
            need = "opportunities" if sub == "state_history" else "an object type with links"
            raise InputError(
                f"--with {sub}: the export names no {need}",
                hint="Export the parent object type too (or none: every one).",
            )
        for obj in parents:
            params = {"top": 1, "count_total": "true"} | ({"brief": "true"} if obj.brief else {})
            reply = await client.get(obj.endpoint, params)
            plan.probes += 1
            total = reply.total if reply.total is not None else len(reply.data or [])
            plan.parts[(sub, obj.name)] = total
    plan.remaining = client.quota.remaining
    budget = [plan.remaining - plan.reserve] if plan.remaining is not None else []
    if client.max_requests is not None:
        budget.append(client.max_requests - client.stats.sent)
    if budget and plan.cost > min(budget):
        raise ReserveReached(
            f"{plan.describe()}: more than this run may spend ({max(0, min(budget)):,}); "
            "nothing was exported",
            hint="Name fewer object types, or run when the rolling 24-hour window has freed "
            "enough (insightly-etl export without --with costs a request per 500 records).",
        )
    return plan


class SubFetcher:
    """Fetches one sub-collection for every record of the parents' files and writes it."""

    def __init__(self, client: InsightlyClient, out_dir: Path, progress: Progress) -> None:
        self.client, self.out_dir, self.progress = client, out_dir, progress

    async def fetch(self, sub: str, parents: list[tuple[ObjectType, Path]]) -> tuple[str, int]:
        """(file name, rows): every parent record's sub-collection, written atomically."""
        spec = SUBCOLLECTIONS[sub]
        rows: list[dict[str, Any]] = []
        for obj, path in parents:
            ids = _ids(path, obj)
            self.progress.start(f"{obj.name}: {sub}", total=len(ids), unit="record")
            try:
                for start in range(0, len(ids), 200):
                    chunk = ids[start : start + 200]
                    answers = await asyncio.gather(*(self._all(obj, i, spec) for i in chunk))
                    for rid, items in zip(chunk, answers, strict=True):
                        rows.extend(_row(sub, obj, rid, item) for item in items)
                    self.progress.advance(len(chunk))
            finally:
                self.progress.finish()
        schema = STATE_HISTORY_SCHEMA if sub == "state_history" else LINKS_SCHEMA
        name = f"{spec.stem}.parquet"
        writer = open_writer(self.out_dir / name, schema, "parquet")
        table = pa.Table.from_pylist(rows, schema=schema)
        for batch in table.combine_chunks().to_batches():
            writer.write(batch)
        writer.commit()
        return name, table.num_rows

    async def _all(self, obj: ObjectType, rid: int, spec: SubCollection) -> list[dict[str, Any]]:
        """One record's items, paged at 500 like any list (most need one request)."""
        items: list[dict[str, Any]] = []
        while True:
            params = {"skip": len(items), "top": PAGE_SIZE}
            try:
                reply = await self.client.get(f"{obj.endpoint}/{rid}/{spec.path}", params)
            except NotFoundError:  # deleted since its object was exported
                return items
            data = reply.data
            page = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
            items.extend(page)
            if len(page) < PAGE_SIZE:
                return items


def _ids(path: Path, obj: ObjectType) -> list[int]:
    assert obj.id_field is not None
    if not path.exists():
        return []
    column = pq.read_table(path, columns=[obj.id_field])[obj.id_field].to_pylist()
    return sorted({i for i in column if i is not None})


def _row(sub: str, obj: ObjectType, rid: int, item: dict[str, Any]) -> dict[str, Any]:
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
