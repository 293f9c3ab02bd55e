"""Settling a write whose answer was lost, by every cheap means (issue 22).

A create is looked for among the records made since just before it was sent:
- the newest records by id (lists come in id order, and a list does not lag as a search
  index may: a record searched for too soon is not there yet);
- the records `/Search?updated_after_utc=` says changed since;
- its match key's search, when the mapping has one (the caller's).
One that resembles what was sent, and that no other row of the import holds, is the row's
record. "Resembles" allows for what the server does to what it is sent (case, spaces, a phone's
punctuation): a field it changed is not evidence the write did not happen.

What cannot be settled stays unknown, and is never sent again by itself: `insightly-etl
reconcile CHECKPOINT` looks again later (the search index caught up), and a create still not
found RESEND_AFTER after it was sent, by the server's clock, certainly was not made: it is
planned again, for the next run to send.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from insightly_etl.api.client import InsightlyClient
from insightly_etl.api.registry import ObjectType, custom_values, get_object, record_id
from insightly_etl.errors import CheckpointError, InputError
from insightly_etl.load.checkpoint import Checkpoint
from insightly_etl.load.states import UNSETTLED, Action, Reconciled, RowState
from insightly_etl.moments import DATETIME_FORMAT, ISO_FORMAT, iso_instant

Record = dict[str, Any]

SETTLE = timedelta(seconds=2)  # before sent_at: strictly-after filters and clocks' granularity
RESEND_AFTER = timedelta(minutes=15)  # far past any search lag seen; then "not found" is "not made"
PARTLY_WITHIN = timedelta(minutes=2)  # a write's deadline: a record made then may be its
RESEND_MINUTES = int(RESEND_AFTER.total_seconds() // 60)
NOT_MADE = (
    "its answer was lost and no record it could have made was found "
    f"{RESEND_MINUTES} minutes on: planned again"
)
NOT_FOUND_YET = (
    "the answer was lost and the record it made, if any, was not found yet; not sent again "
    "(insightly-etl reconcile CHECKPOINT looks for it later)"
)
NEWEST_PAGE = 100  # records a request, read back from the newest
NEWEST_PAGES = 5  # at most, while they are still newer than the write
WHO = ("FIRST_NAME", "LAST_NAME", "EMAIL_ADDRESS", "EMAIL")  # besides the object's own

_PHONE = re.compile(r"^[\d\s+().\-/]{6,}$")
_DATETIME_TEXT = re.compile(r"^\d{4}-\d\d-\d\d([ T]\d\d:\d\d(:\d\d)?)?")


def _same(stored: Any, sent: Any) -> bool:
    """A value as the server keeps it against the value sent: numbers by value (12400.0 sent,
    12400 stored), booleans as booleans, the rest as text (`_same_text`)."""
    if isinstance(sent, bool) or isinstance(stored, bool):
        return str(stored).lower() == str(sent).lower()
    if isinstance(sent, float | int):
        try:
            return abs(float(stored) - float(sent)) <= 1e-9
        except (TypeError, ValueError):
            return False
    return _same_text(stored, sent)


def _same_text(stored: Any, sent: Any) -> bool:
    """Exactly equal — except date-times, which the server may give with seconds or a time
    added (`1990-02-03` sent, `1990-02-03 00:00:00` stored): those by the first 19 characters."""
    a, b = "" if stored is None else str(stored), "" if sent is None else str(sent)
    if _DATETIME_TEXT.match(a) and _DATETIME_TEXT.match(b):
        return _full_datetime(a) == _full_datetime(b)
    return a == b


def _full_datetime(text: str) -> str:
    """`1990-02-03` / `1990-02-03T10:00` / `1990-02-03 10:00:00Z` -> `1990-02-03 10:00:00`."""
    text = text.replace("T", " ").removesuffix("Z")
    return (text + " 00:00:00"[len(text) - 10 :])[:19]


def loosely_same(stored: Any, sent: Any) -> bool:
    """`_same`, or the same once the server's likely normalising is undone: case and
    runs of spaces in text, the punctuation of a phone number."""
    if _same(stored, sent):
        return True
    if not isinstance(stored, str) or not isinstance(sent, str):
        return False
    if " ".join(stored.split()).casefold() == " ".join(sent.split()).casefold():
        return True
    if _PHONE.match(stored) and _PHONE.match(sent):
        return re.sub(r"\D", "", stored) == re.sub(r"\D", "", sent)
    return False


def agreement(record: Record, payload: dict[str, Any]) -> dict[str, bool]:
    """Per field sent (custom fields by name, tags as one): whether the record holds it."""
    custom = custom_values(record)
    agrees: dict[str, bool] = {}
    for name, value in payload.items():
        if name == "CUSTOMFIELDS" and isinstance(value, list):
            for c in value:
                if isinstance(c, dict) and "FIELD_NAME" in c:
                    field = str(c["FIELD_NAME"])
                    agrees[field] = loosely_same(custom.get(field), c.get("FIELD_VALUE"))
        elif name == "TAGS" and isinstance(value, list):
            sent = {str(t.get("TAG_NAME")).casefold() for t in value if isinstance(t, dict)}
            held = {
                str(t.get("TAG_NAME")).casefold()
                for t in record.get("TAGS") or ()
                if isinstance(t, dict)
            }
            agrees[name] = sent <= held
        else:
            agrees[name] = loosely_same(record.get(name), value)
    return agrees


def resembles(record: Record, payload: dict[str, Any], who: Iterable[str]) -> bool:
    """The record is what was written: every field that says who it is agrees, and at least
    half of all the fields sent (the server may have changed or ignored some)."""
    if not isinstance(record, dict):
        return False
    agrees = agreement(record, payload)
    if not agrees:
        return True
    if not all(agrees.get(name, True) for name in who):
        return False
    return sum(agrees.values()) * 2 >= len(agrees)


def who_fields(obj: ObjectType) -> tuple[str, ...]:
    """The fields that say which record a body is: the object's name and identity, a
    person's name and e-mail."""
    return tuple(dict.fromkeys(f for f in (obj.identity, obj.name_field, *WHO) if f))


@dataclass(frozen=True)
class Settled:
    """A lost create, looked for: the verdict, its record when found, why when not."""

    verdict: Reconciled
    record: Record | None = None
    message: str | None = None


class Reconciler:
    """Finds the record a lost create made, for the import and for `insightly-etl reconcile`."""

    def __init__(
        self, client: InsightlyClient, obj: ObjectType, claimed: Callable[[], set[int]]
    ) -> None:
        self.client, self.obj, self.claimed = client, obj, claimed
        self.who = who_fields(obj)
        self.latest_stamp: datetime | None = None  # the newest DATE_*_UTC the server wrote

    async def settle(
        self, payload: dict[str, Any], sent_at: datetime, also: Iterable[Record] = ()
    ) -> Settled:
        """Look for the record a create sent at `sent_at` made, and say what is known."""
        found, alike, looked_at = await self.find_created(payload, sent_at, also)
        if found is not None:
            return Settled(Reconciled.FOUND, found)
        if alike:
            shown = ", ".join(str(i) for i in alike[:5])
            return Settled(
                Reconciled.AMBIGUOUS,
                message=f"its answer was lost and {len(alike)} records resemble what it sent "
                f"equally well ({shown}): which one it made cannot be told, so it is not sent "
                "again; check them in Insightly",
            )
        if partly := self.partly_alike(payload, sent_at, looked_at):
            # made as it was sent, and holding some of who it is: edited since, by a colleague
            # or a workflow? Not "never made": sent again, it would be a second record
            shown = ", ".join(str(i) for i in partly[:5])
            return Settled(
                Reconciled.AMBIGUOUS,
                message=f"its answer was lost; no record holds all it sent, but {shown} "
                "(made as it was sent) holds part of who it is, as if edited since: it is not "
                "sent again; check in Insightly",
            )
        if self.certainly_not_made(sent_at):
            return Settled(Reconciled.NOT_MADE, message=NOT_MADE)
        return Settled(Reconciled.NOT_YET, message=NOT_FOUND_YET)

    async def find_created(
        self, payload: dict[str, Any], sent_at: datetime, also: Iterable[Record] = ()
    ) -> tuple[Record | None, list[int], dict[int, Record]]:
        """The record made since `sent_at` that resembles `payload` best and that no other
        row holds; or, when several fit equally well, their ids; and the records looked at."""
        since = sent_at - SETTLE
        newest, complete = await self.newest(since)
        # every record made since is among the newest when they reach back past it: a record
        # changed since but made before (the search's) could not be this create's
        others = [] if complete else await self.changed_since(since)
        candidates: dict[int, Record] = {}
        for record in [*also, *newest, *others]:
            rid = record_id(record, self.obj.id_field or "") if isinstance(record, dict) else None
            if rid is not None:
                candidates.setdefault(rid, record)
        taken = self.claimed()
        scored = sorted(
            (
                (sum(agreement(record, payload).values()), rid)
                for rid, record in candidates.items()
                if rid not in taken
                and made_since(record, since)
                and resembles(record, payload, self.who)
            ),
            reverse=True,
        )
        if not scored:
            return None, [], candidates
        if len(scored) > 1 and scored[0][0] == scored[1][0]:
            # two records fit as well as each other (two rows alike, both lost): which is
            # this row's cannot be said, and neither may be taken for "never made"
            return None, [rid for score, rid in scored if score == scored[0][0]], candidates
        return candidates[scored[0][1]], [], candidates

    def partly_alike(
        self, payload: dict[str, Any], sent_at: datetime, looked_at: dict[int, Record]
    ) -> list[int]:
        """Of the records find_created looked at, those no row holds, made within
        PARTLY_WITHIN of `sent_at`, holding the e-mail sent or the whole name sent, though not
        all that was sent. (A surname alone is no evidence: rows of one family, or lost
        together.)"""
        taken = self.claimed()
        since, until = sent_at - SETTLE, sent_at + PARTLY_WITHIN
        sent = {k: v for k, v in payload.items() if k in self.who and v}
        emails = [k for k in sent if k in ("EMAIL_ADDRESS", "EMAIL")]
        names = [k for k in sent if k not in emails]
        if names and set(names) <= {"FIRST_NAME", "LAST_NAME"} and len(names) < 2:
            names = []  # a surname alone (or a first name) is no whole name
        out = []
        for rid, record in looked_at.items():
            made = iso_instant(record.get("DATE_CREATED_UTC"))
            if rid in taken or made is None or not since <= _utc(made) <= until:
                continue
            agrees = agreement(record, sent)
            if any(agrees[k] for k in emails) or (names and all(agrees[k] for k in names)):
                out.append(rid)
        return out

    async def newest(self, since: datetime) -> tuple[list[Record], bool]:
        """The newest records by id, read back from the end of the list a page at a time
        while they were still made after `since`; and whether they reach back past it (every
        record made since is among them), which records without DATE_CREATED_UTC cannot say."""
        count = await self.client.get(self.obj.endpoint, {"top": 1, "count_total": "true"})
        end = count.total
        if end is None:
            return [], False
        records: list[Record] = []
        for _ in range(NEWEST_PAGES):
            skip = max(0, end - NEWEST_PAGE)
            reply = await self.client.get(self.obj.endpoint, {"skip": skip, "top": end - skip})
            page = [r for r in reply.data or [] if isinstance(r, dict)]
            records.extend(page)
            self._stamps(page)
            made = [m for r in page if (m := iso_instant(r.get("DATE_CREATED_UTC"))) is not None]
            if len(made) < len(page) or not page:
                return records, False
            if skip == 0 or any(_utc(m) < since for m in made):
                return records, True
            end = skip
        return records, False

    def _stamps(self, records: list[Record]) -> None:
        for record in records:
            for field in ("DATE_UPDATED_UTC", "DATE_CREATED_UTC"):
                moment = iso_instant(record.get(field))
                if moment is not None:
                    moment = _utc(moment)
                    if self.latest_stamp is None or moment > self.latest_stamp:
                        self.latest_stamp = moment

    async def changed_since(self, since: datetime) -> list[Record]:
        if not self.obj.searchable:
            return []
        records: list[Record] = []
        params = {"updated_after_utc": since.astimezone(UTC).strftime(ISO_FORMAT)}
        async for page in self.client.iter_pages(
            f"{self.obj.endpoint}/Search", params, key=self.obj.id_field
        ):
            records.extend(page.records)
        return records

    def certainly_not_made(self, sent_at: datetime) -> bool:
        """Not found RESEND_AFTER after it was sent, by the server's clock: never made.
        Without a Date header from the server, its clock is only known to be past the newest
        stamp its records carry (never this machine's clock, which may be ahead)."""
        now = self.client.last_server_time or self.latest_stamp
        return now is not None and now - sent_at > RESEND_AFTER


def sent_moment(sent_at: str | None) -> datetime | None:
    if not sent_at:
        return None
    return datetime.strptime(sent_at, DATETIME_FORMAT).replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def made_since(record: Record, since: datetime) -> bool:
    """Whether the record was made at `since` or after (a record that says nothing: maybe)."""
    made = iso_instant(record.get("DATE_CREATED_UTC"))
    return made is None or _utc(made) >= since - timedelta(seconds=1)


@dataclass
class ReconcileCounts:
    found: int = 0  # lost creates found: done, with their records (undo deletes them)
    not_made: int = 0  # certainly never made: planned again, for the next import run
    unknown: int = 0  # still not found, sent too recently to say: look again later
    updates: int = 0  # lost updates: the next import run re-reads their records
    ambiguous: int = 0  # several records fit equally: a person must tell (never re-sent)

    @property
    def exit_code(self) -> int:
        if self.ambiguous:
            return 1  # a person must look: which record is the row's cannot be told
        return 75 if self.unknown else 0  # EX_TEMPFAIL: run it again later


async def reconcile_checkpoint(client: InsightlyClient, path: Path) -> ReconcileCounts:
    """`insightly-etl reconcile CHECKPOINT`: settle the creates of an import whose answers
    were lost, from the checkpoint alone (what each sent, and when), in its own account."""
    checkpoint = Checkpoint.existing(path)
    try:
        try:
            obj = get_object(checkpoint.meta("object") or "")
        except InputError:
            raise CheckpointError(
                f"{path} is not an import checkpoint (no object recorded)"
            ) from None
        checkpoint.bind_account(await client.account_for(checkpoint.account()), record=False)
        spent = lambda: (client.stats.sent, dict(client.stats.sent_minutes))  # noqa: E731
        with checkpoint.recorded_run("reconcile", spent):
            return await _settle(client, checkpoint, obj)
    finally:
        checkpoint.close()


async def _settle(
    client: InsightlyClient, checkpoint: Checkpoint, obj: ObjectType
) -> ReconcileCounts:
    """Each unsettled create of the checkpoint looked for again: found, never made, or not yet."""
    reconciler = Reconciler(client, obj, checkpoint.rows.claimed)
    counts = ReconcileCounts()
    rows = [b.row for b in checkpoint.rows.brief() if b.state in UNSETTLED]
    for entry in checkpoint.rows.of(rows).values():
        if entry.action != Action.CREATE or not entry.payload:
            counts.updates += 1
            continue
        sent = sent_moment(entry.sent_at) or client.server_now()
        settled = await reconciler.settle(entry.payload, sent)
        rid = record_id(settled.record, obj.id_field or "") if settled.record else None
        if settled.verdict is Reconciled.FOUND and settled.record and rid is not None:
            stamp = settled.record.get("DATE_UPDATED_UTC")
            checkpoint.rows.done(
                entry.row, Action.CREATE, rid, stamp=stamp if isinstance(stamp, str) else None
            )
            counts.found += 1
        elif settled.verdict is Reconciled.NOT_MADE:
            checkpoint.rows.mark([entry.row], RowState.PLANNED, message=settled.message)
            counts.not_made += 1
        else:
            checkpoint.rows.unknown(entry.row, settled.message or NOT_FOUND_YET)
            if settled.verdict is Reconciled.AMBIGUOUS:
                counts.ambiguous += 1
            else:
                counts.unknown += 1
    return counts
