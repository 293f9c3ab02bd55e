"""The asynchronous Insightly client shared by export and import.

    client = InsightlyClient(settings, rate=10, max_in_flight=8)
    async with client:
        async for page in client.iter_pages("Contacts"):
            ...
        record = await client.create("Contacts", {"FIRST_NAME": "Ada"})

A request goes through small layers: in-flight slot → halt / budget / quota / reserve check →
pacing slot → `before_send` (the caller records "sent") → send, bounded by a deadline and a
size cap (`_receive`) → decide (`retry.py`) → retry or raise. Callers get plain data (`Reply`,
dicts); httpx stays inside `api/`. The API key lives in `httpx.BasicAuth` and a `Secret`; it is
never logged, and any echo of it in a server's text is redacted (`config.redact`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json as json_module
import logging
import math
import random
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from insightly_etl import __version__
from insightly_etl.account_id import AccountId
from insightly_etl.api.accounting import QuotaState, RequestStats, frees_up, header_count
from insightly_etl.api.pacing import Clock, InFlight, RateLimiter, Sleep
from insightly_etl.api.retry import (
    Decision,
    RetryPolicy,
    Verdict,
    decide_exception,
    decide_response,
)
from insightly_etl.config import Settings, printable, redact
from insightly_etl.errors import (
    AnswerTooLarge,
    ApiError,
    BudgetExhausted,
    ConfigError,
    ForbiddenError,
    Halted,
    NotFoundError,
    OutcomeUnknown,
    QuotaError,
    QuotaExhausted,
    RateLimited,
    ReserveReached,
    TransportError,
    UnstableOrder,
)
from insightly_etl.moments import iso_instant

log = logging.getLogger("insightly_etl.api")
BeforeSend = Callable[[], None]

PAGE_SIZE = 500  # the API's maximum `top` (docs/api.md §4)
MAX_BODY = 64 << 20  # bytes of one answer; a page of 500 records with custom fields is ~1 MB
# Live tenants hold records of ~100 KB (docs/api.md §10): a page of 500 is then ~50 MB and slow
# to come. A first page beyond either of these makes the pages after it smaller, in proportion;
# a first page beyond MAX_BODY is asked again at a quarter of the size.
PAGE_BYTES = 16 << 20
PAGE_SECONDS = 30.0  # a quarter of the deadline for a whole answer
MIN_PAGE = 25
GROW_AFTER = 3  # pages in a row with room for twice as many before a smaller size grows
TAIL_READS = 3  # a listing's end is read again at most this often (iter_pages)
_NO_BOUND = 1 << 62  # requests_left's "as many as asked" for an allowance not known
CLOCK_SKEW = timedelta(minutes=1)  # a difference from the server's clock worth a warning
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})


# `\ud800` … `\udfff` in a JSON text: a half of a UTF-16 pair, alone when a server cut an
# emoji in two (.NET writes it so); no file or Arrow string may hold one
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """The answer with each lone surrogate written as U+FFFD (a pair was joined by the JSON
    parser already)."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Reply:
    status: int
    data: Any
    headers: Mapping[str, str]
    size: int = 0  # bytes of the body, once gzip is undone
    seconds: float = 0.0  # from sending to the whole answer

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")

    @property
    def total(self) -> int | None:
        return header_count(self.headers.get("X-Total-Count"))


@dataclass(frozen=True)
class _Answer:
    """One page as answered: where it was asked from, how many, and the count it gave."""

    skip: int
    top: int
    records: list[dict[str, Any]]
    total: int | None


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    skip: int
    total: int | None  # X-Total-Count of the first page, when asked for
    top: int = PAGE_SIZE  # the records asked for (fewer when the pages were made smaller)


@dataclass
class Listed:
    """What a listing ended with, filled as it is read: the last X-Total-Count answered. A
    count below the records read says some were deleted after their page was read."""

    count: int | None = None


class InsightlyClient:
    def __init__(
        self,
        settings: Settings,
        *,
        rate: float = 10.0,
        max_in_flight: int = 8,
        burst: int = 8,  # of the 10 a second the documentation allows: 2 left for jitter
        max_requests: int | None = None,
        reserve: int = 0,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        deadline: float | None = None,  # a whole answer, at most (default 4 × timeout)
        max_body: int = MAX_BODY,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        seed: int | None = None,
    ) -> None:
        self.base_url = settings.base_url
        self.limiter = RateLimiter(rate, burst=burst, clock=clock, sleep=sleep)
        self.max_in_flight = max_in_flight
        self.max_requests = max_requests
        self.reserve = reserve
        self.retry = retry or RetryPolicy()
        self.quota = QuotaState()
        self.stats = RequestStats()
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random(seed)
        self._slots = InFlight(max_in_flight)
        self._in_flight = 0
        self._quota_spent: QuotaExhausted | None = None  # once the server said so, stop sending
        self.stopped_by: QuotaError | None = None  # the quota, reserve or budget that stopped it
        self.last_server_time: datetime | None = None  # from the Date header of the last answer
        self._skew: timedelta | None = None  # the server's clock less ours, when known
        self._served = False  # an answer below 400 came: the URL is the API's
        # without a Date header: the newest DATE_*_UTC read, a time the server's clock is past
        self.stamp_floor: datetime | None = None
        self._halt: asyncio.Event | None = None
        self._reading: set[asyncio.Task[Any]] = set()  # tasks with a read in flight
        self._dropped: set[asyncio.Task[Any]] = set()  # of them, those a stop cancelled
        self._watch: asyncio.Task[None] | None = None  # drops the reads once told to stop
        self.deadline = deadline or 4 * timeout
        self.max_body = max_body
        self.page_bytes, self.page_seconds = PAGE_BYTES, PAGE_SECONDS
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            auth=httpx.BasicAuth(settings.api_key.reveal(), ""),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=max_in_flight, max_keepalive_connections=max_in_flight
            ),
            headers={"User-Agent": f"insightly-etl/{__version__}", "Accept": "application/json"},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"InsightlyClient({self.base_url!r})"

    async def __aenter__(self) -> InsightlyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self._http.aclose()

    # ------------------------------------------------------------------ verbs
    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Reply:
        return await self.request("GET", path, params=params)

    async def account(self) -> str | None:
        """Which account the key is for: `GET /Instance`'s INSTANCE_SUBDOMAIN (one request).
        None when the key's user may not read it: then nothing can be checked against it."""
        try:
            data = (await self.get("Instance")).data
        except (ForbiddenError, NotFoundError):
            return None
        if not isinstance(data, dict):
            return None
        name = data.get("INSTANCE_SUBDOMAIN") or data.get("INSTANCE_NAME")
        return printable(str(name)[:200]) if name else None  # printed, and in the manifest

    async def account_for(self, known: AccountId) -> AccountId:
        """This key's account, to compare with `known`'s (a checkpoint's): for a run that has
        not asked for the account's name yet (an export asks first, for its partition)."""
        return await self.identify(await self.account(), known)

    async def identify(self, name: str | None, known: AccountId) -> AccountId:
        """This key's account, to compare with `known` (AccountId.mismatch_with): `name` from
        account(), and the account's number when the name is missing (one more request,
        `GET /Users/Me`) or `known` has only a number."""
        number = None
        if name is None or (known.name is None and known.number is not None):
            # every user may read their own user: a key refused that is refused everything,
            # and the run stops there as it would at its next request (exit 77, or 1)
            try:
                me = (await self.get("Users/Me")).data
            except NotFoundError as exc:  # every Insightly API answers it: not the API
                raise self._not_the_api("GET", "Users/Me", exc) from None
            value = me.get("INSTANCE_ID") if isinstance(me, dict) else None
            number = value if isinstance(value, int) and not isinstance(value, bool) else None
        return AccountId(name, number)

    async def get_all(self, path: str) -> list[dict[str, Any]]:
        """Every item of a small list (a record's Links, Comments, FileAttachments …), 500 a
        request. A page that brings nothing new ends it: a server that ignores `skip` would
        otherwise send the same page for ever, each time for a request of the quota."""
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            data = (await self.get(path, {"skip": len(items), "top": PAGE_SIZE})).data
            page = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
            keys = [json_module.dumps(d, sort_keys=True, default=str) for d in page]
            fresh = [d for d, k in zip(page, keys, strict=True) if k not in seen]
            seen.update(keys)
            items.extend(fresh)
            if len(page) < PAGE_SIZE or not fresh:
                return items

    async def download(self, path: str) -> bytes:
        """A file's bytes (`GET /FileAttachments/{id}`: application/octet-stream), at most
        `max_body` of them, paced, retried and counted like any read."""
        reply = await self.request("GET", path, raw=True)
        return bytes(reply.data or b"")

    async def create(
        self, endpoint: str, body: Mapping[str, Any], *, before_send: BeforeSend | None = None
    ) -> dict[str, Any]:
        reply = await self.request("POST", endpoint, json=body, before_send=before_send)
        return self._stamped(_record(reply, "POST", endpoint))

    def server_now(self) -> datetime:
        """The server's clock: as its last Date header said; without one, ours corrected by
        what a write's answer showed (the DATE_UPDATED_UTC it stamped), else ours — and never
        before the newest stamp its records carried (stamp_floor)."""
        if self.last_server_time is not None:
            return self.last_server_time
        ours = datetime.now(UTC) + (self._skew or timedelta(0))
        # never before the newest stamp read: this machine's clock may be behind
        return max(ours, self.stamp_floor) if self.stamp_floor is not None else ours

    def _server_clock(self, said: datetime | None) -> None:
        if said is None:
            return
        self.last_server_time = said
        if self._skew is None:
            self._learn_skew(said)

    def _stamped(self, record: dict[str, Any]) -> dict[str, Any]:
        """A write's answer: its DATE_UPDATED_UTC is the server's clock when it was written."""
        if self._skew is None and self.last_server_time is None:
            stamp = iso_instant(record.get("DATE_UPDATED_UTC"))
            if stamp is not None:
                self._learn_skew(stamp.replace(tzinfo=UTC))
        return record

    def _floor_from(self, data: Any) -> None:
        """The newest stamp an answer's records carry (any stamp the server wrote is a time
        its clock is past), up to a day ahead of ours: a record dated 9999 says nothing."""
        records = data if isinstance(data, list) else [data]
        latest = datetime.now(UTC) + timedelta(days=1)
        moments = [
            m if m.tzinfo else m.replace(tzinfo=UTC)
            for r in records
            if isinstance(r, dict)
            for field in ("DATE_UPDATED_UTC", "DATE_CREATED_UTC")
            if (m := iso_instant(r.get(field))) is not None
        ]
        plausible = [m for m in moments if m <= latest]
        if plausible and (self.stamp_floor is None or max(plausible) > self.stamp_floor):
            self.stamp_floor = max(plausible)

    def _learn_skew(self, server: datetime) -> None:
        self._skew = server - datetime.now(UTC)
        if abs(self._skew) > CLOCK_SKEW:
            relation = "behind" if self._skew > timedelta(0) else "ahead of"
            self.stats.notices.append(
                f"this machine's clock is {_duration(abs(self._skew))} {relation} the server's; "
                "the server's time is used for marks and reconciliation"
            )

    async def update(
        self,
        endpoint: str,
        body: Mapping[str, Any],
        *,
        etag: str | None = None,
        before_send: BeforeSend | None = None,
    ) -> dict[str, Any]:
        """Partial PUT (id field in the body); with `etag`, refused if the record changed."""
        headers = {"If-Match": etag} if etag else None
        reply = await self.request(
            "PUT", endpoint, json=body, headers=headers, before_send=before_send
        )
        return self._stamped(_record(reply, "PUT", endpoint))

    def retry_not_before(self) -> datetime | None:
        """After a stop for the daily quota or the reserve: when the first request this run
        sent leaves Insightly's rolling 24-hour window. Everything spent before this run has
        left it by then, so it is the earliest moment a retry is sure to find requests free.
        None: the run was not stopped by the allowance (a --max-requests budget may go on)."""
        if not isinstance(self.stopped_by, QuotaExhausted | ReserveReached):
            return None
        return frees_up(self.stats.sent_minutes.items(), 1) or datetime.now(UTC)

    def learned_limits(self) -> dict[str, float]:
        """What 429s showed this account to allow, below the caps: worth remembering for the
        next run (`start_from_learned`). Empty when nothing was throttled."""
        learned: dict[str, float] = {}
        if self.limiter.learned is not None:
            learned["rate"] = round(self.limiter.learned, 2)
        if self._slots.learned is not None:
            learned["in_flight"] = self._slots.learned
        return learned

    def start_from_learned(self, learned: Mapping[str, Any] | None) -> dict[str, float]:
        """Begin at what an earlier run learned; returns the part that was usable (a damaged
        hint is only a hint: ignored)."""
        learned = learned if isinstance(learned, Mapping) else {}
        used: dict[str, float] = {}
        rate, in_flight = learned.get("rate"), learned.get("in_flight")
        if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
            self.limiter.start_from(float(rate))
            used["rate"] = round(float(rate), 2)
        if isinstance(in_flight, int) and not isinstance(in_flight, bool) and in_flight > 0:
            self._slots.start_from(in_flight)
            used["in_flight"] = in_flight
        return used

    @property
    def rate_ceiling(self) -> float:
        """The requests/second this client never exceeds."""
        return self.limiter.ceiling

    @property
    def expected_rate(self) -> float:
        """The requests/second to expect: what this account was learned to take (an earlier
        run's, `start_from_learned`), else the ceiling. For estimates of how long work takes."""
        return self.limiter.learned or self.limiter.ceiling

    def meter(self) -> RequestMeter:
        """Counts the requests sent from now on: `meter.requests`."""
        return RequestMeter(self.stats, self.stats.sent)

    def _halted(self, message: str, method: str, path: str) -> Halted:
        """The stop, with the exit code of the signal that set it (128 + its number, as a
        shell reports it: 130 Ctrl-C, 143 SIGTERM), for the files that record the stop."""
        exc = Halted(message, method=method, path=path)
        signum = getattr(self._halt, "signum", None)
        if isinstance(signum, int):
            exc.exit_code = 128 + signum
        return exc

    def halt_on(self, event: asyncio.Event) -> None:
        """Once `event` is set, no further request leaves: each raises `Halted` instead. The
        writes already sent are awaited by their callers (their answers say what they did);
        reads in flight are dropped, raising `Halted` too (a stalled answer would hold the
        stop up to its deadline, and a read changes nothing)."""
        self._halt = event
        if self._watch is not None:
            self._watch.cancel()
        self._watch = asyncio.get_running_loop().create_task(self._drop_reads_on(event))

    async def _drop_reads_on(self, event: asyncio.Event) -> None:
        await event.wait()
        for task in list(self._reading):
            self._dropped.add(task)
            task.cancel()

    async def delete(self, endpoint: str, record_id: int) -> None:
        await self.request("DELETE", f"{endpoint}/{record_id}")

    # ------------------------------------------------------------------ paging
    async def iter_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = PAGE_SIZE,
        concurrent: bool = True,
        key: str | None = None,
        listed: Listed | None = None,
    ) -> AsyncGenerator[Page, None]:
        """Every record of a list or search once, page by page, in the server's order.

        Paging is by offset (`skip`) over a set people change while it is read: a record a
        colleague deletes before the read position moves every later record up one place,
        and a reader that trusts offsets skips a live record. So each page after the first
        overlaps the one before by a hundredth of its size, and `_Seams` checks, by record
        id (`key`, else each record's first field, where Insightly puts the id), that the
        records already read come first in it and in the order they came before:
        - a page holding none of them (more records deleted than the overlap) is read again
          further back until one does ("re-reading what shifted"), with a notice;
        - records already read that come back in another order raise `UnstableOrder`: a
          server whose order changes between pages cannot be paged by offset at all;
        - every page asks for the count (it costs nothing); when the last count is more
          than the records read, the end is read again, for records made meanwhile; the
          last count is left in `listed`.
        The first page's total starts `max_in_flight` page requests at once (`_Window`). A
        page larger than `page_bytes` or slower than `page_seconds` makes the pages asked
        for after it smaller (`_Sizer`). Ends on an empty page, or a short one at the count
        (`_Last`)."""
        base = {**(params or {}), "count_total": "true"}
        sizer = _Sizer(self, path, page_size)
        seams = _Seams(self, path, key, listed)
        first = await self._page_at(path, base, 0, sizer)
        total = first.total
        seams.counted(total)
        last = _Last(self, path, total)
        yield Page(seams.start(first.records), 0, total, first.top)
        if last.is_last(0, first.top, len(first.records)):
            return
        position, shrunk, recounted = seams.stride(first.top), 0, False
        hole: int | None = None  # where a page came back empty among the records read
        while True:
            # up to the latest count: a list that shrank is not read ahead past its end
            bound = (seams.latest or total) if concurrent else None
            source = self._pages(path, base, position, bound, sizer, seams)
            gap: int | None = None
            empty, empty_at = False, 0
            async with aclosing(source) as pages:
                previous: list[dict[str, Any]] = []
                async for answer in pages:
                    seams.counted(answer.total)
                    if not answer.records:
                        empty, empty_at = True, answer.skip
                        break
                    _check_progress(previous, answer.records, path)
                    previous = answer.records
                    fresh = seams.join(answer.records, answer.skip)
                    if fresh is None:
                        gap = answer.skip
                        break
                    yield Page(fresh, answer.skip, total)
                    if last.is_last(answer.skip, answer.top, len(answer.records)):
                        break
            if gap is not None:  # re-read what shifted, then go on after it
                answer, fresh = await self._reseek(path, base, gap, sizer, seams)
                yield Page(fresh, answer.skip, total)
                position = answer.skip + seams.stride(answer.top)
                if not last.is_last(answer.skip, answer.top, len(answer.records)):
                    continue
            if empty and not recounted and empty_at <= len(seams.order):
                hole = empty_at  # reading on, an empty page where the records read go on
            # The end. Read the list's end again when an empty page came where the count says
            # the list now ends before (records deleted below the read position moved unread
            # ones under it; at most TAIL_READS times), or once when the last count is more
            # than the records read (made while the list was read).
            if empty and 0 < seams.latest <= empty_at and shrunk < TAIL_READS:
                shrunk += 1
            elif seams.short() and not recounted:
                recounted = True  # once: a count may lie
            elif hole is not None and recounted and seams.short():
                # a count may lie past the end, but then the end is a short page: an empty
                # page where the records read go on, with the count saying more even after
                # the end was read again, is a server whose paging broke
                raise UnstableOrder(
                    f"{path}: {len(seams.order):,} records read, but the count is "
                    f"{seams.latest:,} and the page at {hole:,} came back empty; the list is "
                    "not complete, and nothing read is used",
                    path=path,
                )
            else:
                return
            position = max(0, seams.latest - seams.stride(sizer.size))

    async def _pages(
        self,
        path: str,
        base: dict[str, Any],
        position: int,
        total: int | None,
        sizer: _Sizer,
        seams: _Seams,
    ) -> AsyncGenerator[_Answer, None]:
        """The answers for the pages from `position` on, in skip order: up to the first
        page's total `max_in_flight` at a time, then one by one until the caller stops."""
        window = _Window(self, path, base, position, total, sizer, seams) if total else None
        try:
            if window is not None:
                async for item in window:
                    yield item
                position = window.next_skip
            while True:
                answer = await self._page_at(path, base, position, sizer)
                yield answer
                position += seams.stride(answer.top)
        finally:
            if window is not None:
                await window.cancel()

    async def _page_at(self, path: str, base: dict[str, Any], skip: int, sizer: _Sizer) -> _Answer:
        """One page from `skip`, of the sizer's size (smaller again while it is too large)."""
        while True:
            top = sizer.size
            try:
                reply = await self.get(path, {**base, "skip": skip, "top": top})
            except AnswerTooLarge:
                sizer.too_large(top)
                continue
            records = _as_page(reply.data, path, top)
            sizer.measure(reply, len(records))
            return _Answer(skip, top, records, reply.total)

    async def _reseek(
        self, path: str, base: dict[str, Any], gap: int, sizer: _Sizer, seams: _Seams
    ) -> tuple[_Answer, list[dict[str, Any]]]:
        """The page at `gap` joins none of the records read: read pages further back, a
        stride at a time, until one does (or the start, which joins by definition)."""
        back = gap
        while True:
            back = max(0, back - seams.stride(sizer.size))
            answer = await self._page_at(path, base, back, sizer)
            seams.counted(answer.total)
            fresh = seams.join(answer.records, back, reread=True) if answer.records else None
            if fresh is not None:
                return answer, fresh
            if back == 0:
                return answer, seams.start(answer.records)

    # ------------------------------------------------------------------ the send chain
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        before_send: BeforeSend | None = None,
        raw: bool = False,
    ) -> Reply:
        """`before_send` runs each time the request is about to leave (after pacing), so a
        caller can record "sent" only for what really went to the network. `raw`: the
        answer's bytes as they came, not JSON (a file's content)."""
        waited = 0.0
        throttle_waited = 0.0  # Retry-After pauses: bounded by max_total_wait too
        attempts = 0  # failures that count against max_attempts (5xx, transport)
        throttled = 0  # burst 429s: the limiter slows down, they are bounded separately
        while True:
            outcome = await self._attempt(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                before_send=before_send,
                raw=raw,
            )
            if isinstance(outcome, Reply):
                return outcome
            error = outcome.error
            if isinstance(error, QuotaExhausted):
                self._quota_spent = self.stopped_by = error
            if isinstance(error, TransportError) and "hint" not in vars(error):
                # where it went: the class's own hint names no address (an API URL carries no
                # credentials: config refuses one that does)
                error.hint = (
                    f"Could not reach {self.base_url}: check the network, --pod or --api-url."
                )
            if outcome.verdict is not Verdict.RETRY:
                raise error
            if isinstance(error, RateLimited):
                throttled += 1
                if throttled > self.retry.max_throttled:
                    raise error
                pause = (
                    self.retry.wait_for(error, 0, self._rng)
                    if error.retry_after is not None
                    else None
                )
                if pause is not None:
                    throttle_waited += pause
                    if throttle_waited > self.retry.max_total_wait:
                        raise error
                    if pause >= 5:
                        log.warning(
                            "%s %s: the server asks to wait %.0fs (Retry-After: %s); waiting",
                            method,
                            path,
                            pause,
                            error.retry_after,
                        )
                # the limiter owns the pause: it spaces every request, not just this one
                self.limiter.on_throttled(pause, sent_at=outcome.sent_at)
                self.stats.retries += 1
                log.info(
                    "%s %s: %s; slowing to %.2f req/s",
                    method,
                    path,
                    error.message,
                    self.limiter.rate,
                )
                continue
            attempts += 1
            delay = self.retry.wait_for(error, attempts, self._rng)
            if attempts >= self.retry.max_attempts or waited + delay > self.retry.max_total_wait:
                raise error
            waited += delay
            self.stats.retries += 1
            self.stats.waited_backoff += delay
            log.info("%s %s: %s; retry %d in %.2fs", method, path, error.message, attempts, delay)
            await self._sleep(delay)

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        before_send: BeforeSend | None = None,
        raw: bool = False,
    ) -> Reply | Decision:
        write = method in WRITE_METHODS
        async with self._slots:
            self._check_budget(method, path)
            self.stats.waited_pacing += await self.limiter.acquire()
            self._check_budget(method, path)  # the quota may have moved while we waited
            if before_send is not None:
                before_send()
            self._in_flight += 1
            self.stats.count_sent()
            started = self._clock()
            try:
                response = await self._receive(method, path, params, json, headers)
                busy = self._slots.busy  # how many were in flight when this one was answered
            except (httpx.TransportError, OSError) as exc:  # OSError: in-process transports
                self.stats.errors[type(exc).__name__] += 1
                log.info("%s %s -> %s", method, path, type(exc).__name__)
                return decide_exception(exc, write=write, method=method, path=path)
            finally:
                self._in_flight -= 1
        elapsed = self._clock() - started
        self.quota.update(response.headers, overtaken=busy)
        self._server_clock(_http_date(response.headers.get("Date")))
        self.stats.by_status[("write" if write else "read", response.status_code)] += 1
        log.debug(
            "%s %s -> %d in %.3fs",
            method,
            response.request.url.raw_path.decode(),
            response.status_code,
            elapsed,
        )
        if 300 <= response.status_code < 400:
            # httpx follows no redirect: a proxy or a wrong URL, and the request was not served
            raise ApiError(
                f"the server redirected to {redact(response.headers.get('Location', '?'))}: "
                "the API is not at this URL",
                status=response.status_code,
                method=method,
                path=path,
                hint="Check --pod / --api-url (the base URL ends in /v3.1/).",
            )
        if response.status_code != 429:
            self.limiter.on_served()
        if response.status_code < 400:
            self._served = True
            self.limiter.on_success()
            self._slots.on_success()
            if raw:
                return Reply(response.status_code, response.content, response.headers)
            try:
                data = response.json() if response.content else None
            except (ValueError, RecursionError):  # RecursionError: arrays nested 100,000 deep
                # an HTML gateway page with a 2xx is an error, not data (docs/api.md §7, [PH]);
                # to a write, whose 2xx says it was applied, an unknown outcome: reconciled
                raise (OutcomeUnknown if write else ApiError)(
                    f"the answer is not JSON: {redact(response.text)[:80]!r}",
                    status=response.status_code,
                    method=method,
                    path=path,
                ) from None
            if _ESCAPED_SURROGATE.search(response.content):
                data = _without_lone_surrogates(data)
            if self.last_server_time is None:  # no Date header: the records say a time
                self._floor_from(data)
            return Reply(
                response.status_code, data, response.headers, len(response.content), elapsed
            )
        if response.status_code == 429 and response.headers.get("X-RateLimit-Remaining") != "0":
            self.stats.throttled += 1
            self._slots.on_throttled(self._clock(), busy)
        decision = decide_response(response, write=write, method=method, path=path)
        error = decision.error
        if isinstance(error, NotFoundError) and not error.from_api and not self._served:
            raise self._not_the_api(method, path, error)  # every command's first request
        return dataclasses.replace(decision, sent_at=started)

    def _not_the_api(self, method: str, path: str, error: NotFoundError) -> ConfigError:
        """A 404 that is not in the API's words before any answer was: the base URL is not
        Insightly's API (a wrong path, the pod-less host that serves only a help page)."""
        return ConfigError(
            f"{self.base_url} answered {method} {path} with HTTP {error.status} "
            f"({error.message[:80]}): it is not Insightly's API URL",
            hint="Insightly's is https://api.POD.insightly.com/v3.1/ (the pod is shown under "
            "User Settings → API, next to the key); a sandbox's ends in /v3.1/.",
        )

    async def _receive(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """One exchange, bounded: the whole answer within `deadline` seconds (httpx's timeout
        is per read, so a server dripping a byte at a time would never time out), and at most
        `max_body` bytes (a page is about 1 MB; a hostile answer must not exhaust memory)."""
        request = self._http.build_request(method, path, params=params, json=json, headers=headers)
        chunks: list[bytes] = []
        task = asyncio.current_task() if method == "GET" else None
        if task is not None:
            self._reading.add(task)
        try:
            async with asyncio.timeout(self.deadline):
                response = await self._http.send(request, stream=True)
                try:
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_body:
                            raise AnswerTooLarge(
                                f"the answer is larger than {self.max_body:,} bytes; refused",
                                status=response.status_code,
                                method=method,
                                path=path,
                            )
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"no complete answer within {self.deadline:g}s", request=request
            ) from None
        except asyncio.CancelledError:
            if task is None or task not in self._dropped:
                raise
            self._dropped.discard(task)
            task.uncancel()  # a stop's, not the caller's: the read ends as a halted request
            raise self._halted("stopping: a read in flight was dropped", method, path) from None
        finally:
            if task is not None:
                self._reading.discard(task)
        # as the bytes came: a header's value may be Latin-1 (`Content-Disposition` of a
        # `Zoë.pdf`), which re-encoding text as ASCII refused, failing every request
        kept = [
            (k, v)
            for k, v in response.headers.raw
            if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=kept, content=b"".join(chunks), request=request
        )

    def requests_left(self) -> tuple[int, int] | None:
        """(how many more requests this run may send, how many a run could send at most)
        before --max-requests, the daily quota or --reserve stops it; None: no bound known.
        A run's most is --max-requests, or the day's allowance less the reserve."""
        bounds: list[tuple[int, int]] = []
        if self.max_requests is not None:
            bounds.append((self.max_requests - self.stats.sent, self.max_requests))
        if self.quota.remaining is not None:
            # a day's allowance no answer gave (a gateway that drops X-RateLimit-Limit) is
            # no bound: what is left now says nothing of what a later run has
            day = self.quota.limit if self.quota.limit is not None else _NO_BOUND
            left = self.quota.remaining - self._in_flight - self.reserve
            bounds.append((left, day - self.reserve))
        if not bounds:
            return None
        return max(0, min(b[0] for b in bounds)), max(0, min(b[1] for b in bounds))

    @staticmethod
    def pages_after(page: Page) -> int:
        """How many more page requests a list takes after its first `page`, the next pages
        as large as it was asked (at least: more if records are deleted or made while it is
        read); a page made smaller for its size counts as the size it was made."""
        first = len(page.records)
        if page.total is None or first <= 0 or (first < page.top and page.total <= first):
            return 0  # no count, or a short first page that is the whole list
        # the pager asks at every stride below the count: a full first page of exactly the
        # count is followed by one more (it cannot know it was the last)
        return max(0, math.ceil(page.total / _Seams.stride_of(page.top)) - 1)

    def _check_budget(self, method: str, path: str) -> None:
        if self._halt is not None and self._halt.is_set():
            raise self._halted("stopping: not sent", method, path)
        if self._quota_spent is not None:
            raise self._quota_spent
        if self.max_requests is not None and self.stats.sent >= self.max_requests:
            self.stopped_by = BudgetExhausted(
                f"the budget of {self.max_requests} requests for this run is spent"
            )
            raise self.stopped_by
        remaining = self.quota.remaining
        if (
            self.reserve
            and remaining is not None
            and remaining - self._in_flight - 1 < self.reserve
        ):
            if self.quota.limit is not None and self.reserve >= self.quota.limit:
                raise ConfigError(  # no day frees enough: not a stop to wait out (75)
                    f"--reserve {self.reserve:,} keeps back the whole day's allowance "
                    f"({self.quota.limit:,} requests): no run can send a request",
                    hint="Reserve less than the account's daily allowance.",
                )
            self.stopped_by = ReserveReached(
                f"{remaining:,} requests are left today and {self.reserve:,} are reserved "
                "for other integrations"
            )
            raise self.stopped_by


class _Last:
    """Whether a page is the last. A short page is, unless the count the first page gave says
    more records lie beyond it: a server that leaves records out of a page (ones this user may
    not see, filtered after paging) answers short pages in the middle, and ending there lost
    every record after it, later "deleted" by a comparison of ids. Paging then goes on to the
    count, and says so once; an empty page always ends it."""

    def __init__(self, client: InsightlyClient, path: str, total: int | None) -> None:
        self.client, self.path, self.total = client, path, total
        self.said = False

    def is_last(self, skip: int, top: int, records: int) -> bool:
        if records == 0:
            return True
        if records >= top:
            return False
        if self.total is None or skip + top >= self.total:
            return True
        if not self.said:
            self.said = True
            self.client.stats.notices.append(
                f"{self.path}: the page at {skip:,} held {records:,} of the {top:,} records "
                f"asked for, though {self.total:,} were counted; paging went on to the count"
            )
        return False


class _Seams:
    """Which records of a page are new, and whether the page joins those read before it.

    Records are known by id, with the order they were first read in. A page joins when it
    holds at least one record already read; known records must come in the order they were
    read (else `UnstableOrder`); every other record is new. Records made meanwhile may sit
    among known ones (a server ordering by something other than id); they are new."""

    MAX_REREADS = 50
    CALM = 10

    def __init__(
        self, client: InsightlyClient, path: str, key: str | None, listed: Listed | None = None
    ) -> None:
        self.client, self.path, self.key = client, path, key
        self.listed = listed if listed is not None else Listed()  # the last count answered
        self.order: dict[Any, int] = {}
        self.rereads = 0
        self.widen = 1  # doubled after each page that did not join, halved after CALM that did
        self.calm = 0  # pages that joined since the last that did not

    def stride(self, top: int) -> int:
        """How far the next page starts: `top` less the overlap. The overlap is a hundredth
        of the page (5 of 500), doubled each time a page did not join (records deleted
        faster than it absorbs), up to half the page, and halved again after CALM pages
        that did."""
        return self.stride_of(top, self.widen)

    @staticmethod
    def stride_of(top: int, widen: int = 1) -> int:
        overlap = min(max(1, top // 100) * widen, max(1, top // 2))
        return max(1, top - overlap)

    def _id(self, record: dict[str, Any]) -> Any:
        value = record.get(self.key) if self.key else next(iter(record.values()), None)
        if isinstance(value, float) and value.is_integer():  # 2001.0: a JSON writer's 2001
            return int(value)
        return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None

    def counted(self, total: int | None) -> None:
        if total is not None:
            self.listed.count = total

    @property
    def latest(self) -> int:
        """The last X-Total-Count answered (0: none yet)."""
        return self.listed.count or 0

    def short(self) -> bool:
        """Fewer records read than the last count: some may lie past the end read."""
        return len(self.order) < self.latest

    def start(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of a page at the start of the list: every one not read is new."""
        ids = [self._id(r) for r in records]
        self._once(ids, 0)
        return self._new(records, ids)

    def _once(self, ids: list[Any], skip: int) -> None:
        named = [i for i in ids if i is not None]
        if self.key and ids and not named:
            raise UnstableOrder(
                f"{self.path}: none of the {len(ids):,} records of the page at {skip:,} has a "
                f"{self.key}; records without ids cannot be paged, nor written to a file of "
                "records, and nothing read is used",
                path=self.path,
            )
        if len(set(named)) < len(named):
            twice = next(i for i, n in Counter(named).items() if n > 1)
            raise UnstableOrder(
                f"{self.path}: the page at {skip:,} lists record {twice} more than once; a "
                "server that repeats records cannot be paged by offset with trust, and nothing "
                "read is used",
                path=self.path,
            )

    def join(
        self, records: list[dict[str, Any]], skip: int, *, reread: bool = False
    ) -> list[dict[str, Any]] | None:
        """The new records of a page, or None when it joins none of those read before."""
        ids = [self._id(r) for r in records]
        self._once(ids, skip)
        known = [self.order[i] for i in ids if i is not None and i in self.order]
        if any(b <= a for a, b in itertools.pairwise(known)):
            raise UnstableOrder(
                f"{self.path}: the page at {skip:,} lists records already read in another order "
                "than before; the server's order changes between requests, so paging by "
                "offset cannot be trusted to see every record, and nothing read is used",
                path=self.path,
            )
        if not known and records:
            self.rereads += 1
            self.widen, self.calm = self.widen * 2, 0
            if self.rereads > self.MAX_REREADS:
                raise UnstableOrder(
                    f"{self.path}: records were deleted faster than the list could be read "
                    f"({self.MAX_REREADS} pages read again); try again when the account is quiet",
                    path=self.path,
                )
            if self.rereads == 1:
                self.client.stats.notices.append(
                    f"{self.path}: records were deleted while the list was read (the page at "
                    f"{skip:,} no longer joined the one before); the pages that shifted were "
                    "read again"
                )
            return None
        if reread:
            self.rereads += 1
        else:
            self.calm += 1
            if self.calm >= self.CALM and self.widen > 1:
                self.widen, self.calm = self.widen // 2, 0
        return self._new(records, ids)

    def _new(self, records: list[dict[str, Any]], ids: list[Any]) -> list[dict[str, Any]]:
        fresh = []
        for record, rid in zip(records, ids, strict=True):
            if rid is None:
                fresh.append(record)
            elif rid not in self.order:
                self.order[rid] = len(self.order)
                fresh.append(record)
        return fresh


class _Sizer:
    """The page size of one listing: `top` at first, smaller after a page larger than
    `page_bytes` or slower than `page_seconds` (in proportion, with a margin); and larger
    again, doubling up to `top`, after GROW_AFTER pages in a row that had room for twice as
    many (one slow answer of a busy server would otherwise cost more requests for the rest of
    the listing). Never above half a size whose answer passed the client's cap: that answer
    is a request spent for nothing. Each change is a notice in the client's statistics."""

    def __init__(self, client: InsightlyClient, path: str, size: int) -> None:
        self.client, self.path, self.size = client, path, size
        self.top = size
        self.calm = 0  # pages in a row with room for twice as many

    def too_large(self, top: int) -> None:
        """An answer to a page of `top` passed the client's cap unread: a quarter of that
        size, again (pages asked for at once may each pass it: the size, never the ceiling,
        follows the smallest)."""
        if top <= MIN_PAGE:
            raise AnswerTooLarge(
                f"even a page of {top} records is larger than "
                f"{self.client.max_body:,} bytes; refused",
                path=self.path,
            )
        smaller = max(MIN_PAGE, top // 4)
        if smaller < self.size:
            self.client.stats.notices.append(
                f"{self.path}: a page of {top} records was larger than "
                f"{self.client.max_body / 1e6:,.1f} MB; asked again for {smaller}"
            )
        self.top = min(self.top, max(smaller, top // 2))
        self.size, self.calm = min(self.size, smaller), 0

    def measure(self, reply: Reply, records: int) -> None:
        client = self.client
        if not records:
            return
        over = max(reply.size / client.page_bytes, reply.seconds / client.page_seconds)
        if over > 1:
            self.calm = 0
            fits = max(MIN_PAGE, int(records / over * 0.8))
            if fits >= self.size:
                return
            client.stats.notices.append(
                f"{self.path}: a page of {records} records came to {reply.size / 1e6:,.1f} MB "
                f"in {reply.seconds:,.1f}s; asking for {fits} at a time"
            )
            self.size = fits
            return
        grown = min(self.top, self.size * 2)
        if grown <= self.size or over * grown / records > 0.8:  # no room, with the margin
            self.calm = 0
            return
        self.calm += 1
        if self.calm < GROW_AFTER:
            return
        client.stats.notices.append(
            f"{self.path}: {GROW_AFTER} pages in a row had room for twice as many records; "
            f"asking for {grown} at a time again"
        )
        self.size, self.calm = grown, 0


class _Window:
    """Up to max_in_flight page requests running ahead, each of the sizer's size when it
    is asked for; pages come out in skip order, with the `top` each was asked with."""

    def __init__(
        self,
        client: InsightlyClient,
        path: str,
        base: dict[str, Any],
        start: int,
        total: int,
        sizer: _Sizer,
        seams: _Seams,
    ) -> None:
        self.client = client
        self.seams = seams
        self.path = path
        self.base = base
        self.next_skip = start
        self.total = total
        self.sizer = sizer
        self.pending: dict[int, tuple[int, asyncio.Task[Reply]]] = {}
        self._top_up()

    def _top_up(self) -> None:
        while self.next_skip < self.total and len(self.pending) < self.client.max_in_flight:
            skip, top = self.next_skip, self.sizer.size
            params = {**self.base, "skip": skip, "top": top}
            self.pending[skip] = (top, asyncio.ensure_future(self.client.get(self.path, params)))
            self.next_skip += self.seams.stride(top)

    async def __aiter__(self) -> AsyncIterator[_Answer]:
        while self.pending:
            skip = min(self.pending)
            top, task = self.pending.pop(skip)
            total = None
            try:
                reply = await task
            except AnswerTooLarge:  # records grew past the cap: this range in smaller pages
                self.sizer.too_large(top)
                records = await self._range(skip, top)
            else:
                records = _as_page(reply.data, self.path, top)
                self.sizer.measure(reply, len(records))
                total = reply.total
            self._top_up()
            yield _Answer(skip, top, records, total)

    async def _range(self, skip: int, top: int) -> list[dict[str, Any]]:
        """The records of [skip, skip + top), asked for at the sizer's size."""
        records: list[dict[str, Any]] = []
        while len(records) < top:
            size = min(self.sizer.size, top - len(records))
            params = {**self.base, "skip": skip + len(records), "top": size}
            try:
                reply = await self.client.get(self.path, params)
            except AnswerTooLarge:
                self.sizer.too_large(size)
                continue
            page = _as_page(reply.data, self.path, size)
            records.extend(page)
            if len(page) < size:
                break
        return records

    async def cancel(self) -> None:
        for _, task in self.pending.values():
            task.cancel()
        if self.pending:
            await asyncio.gather(*(t for _, t in self.pending.values()), return_exceptions=True)
        self.pending.clear()


@dataclass(frozen=True)
class RequestMeter:
    stats: RequestStats
    start: int

    @property
    def requests(self) -> int:
        """Requests that went on the wire since the meter was made (each one costs quota)."""
        return self.stats.sent - self.start


def _record(reply: Reply, method: str, path: str) -> dict[str, Any]:
    """A write's answer must be the record as a JSON object. Anything else (a list, a string,
    an empty or truncated 2xx) says the write was applied but not what it made: an unknown
    outcome, for the caller to reconcile, not a failure with no id."""
    if not isinstance(reply.data, dict):
        raise OutcomeUnknown(
            f"the answer to a write is not a record (a JSON object) but {type(reply.data).__name__}",
            status=reply.status,
            method=method,
            path=path,
        )
    return dict(reply.data)


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = round(seconds / size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
    return f"{round(seconds)} s"


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError):  # 31 Dec 9999 -0100: no instant
        return None


def _as_page(data: Any, path: str, top: int = PAGE_SIZE) -> list[dict[str, Any]]:
    # Lists are bare JSON arrays; anything else (an HTML gateway page, an envelope) is an error,
    # not an empty page (docs/api.md §7, [PH]). More records than asked for is no paging at all.
    if not isinstance(data, list):
        raise ApiError(f"expected a JSON array from {path}, got {type(data).__name__}", path=path)
    if not all(isinstance(record, dict) for record in data):
        raise ApiError(f"{path} answered a list holding something other than records", path=path)
    if len(data) > top:
        raise ApiError(
            f"{path} answered {len(data):,} records to top={top}: not the API's paging",
            path=path,
        )
    return data


def _check_progress(
    previous: list[dict[str, Any]], current: list[dict[str, Any]], path: str
) -> None:
    if current and previous and current[0] == previous[0]:
        raise UnstableOrder(  # a server whose paging is broken: exit 69, as the others
            f"{path}: the server answered the same page for two offsets (skip ignored?); "
            "paging by offset cannot be trusted, and nothing read is used",
            path=path,
        )
