"""The sandbox HTTP API: `/v3.1/...` as Insightly serves it, plus `/_sandbox/...` admin routes.

Behaviour follows `docs/api.md`; section numbers below refer to it.
Order of a request: auth (401) → per-second bucket (429) → daily quota (429, Remaining 0)
→ latency → fault injection → the endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import difflib
import hashlib
import json
import random
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from insightly_etl.moments import iso_instant
from insightly_etl.sandbox import synth
from insightly_etl.sandbox.model import (
    ACTIVITY_PARENTS,
    ATTACHMENT_PARENTS,
    COMMENT_PARENTS,
    DATE_FMT,
    EMAIL_PARENTS,
    NOTE_PARENTS,
    OWN_ARRAYS,
    WriteRejected,
)
from insightly_etl.sandbox.store import Account, Collection, SeedError, dumps

_ETAG = re.compile(r'(W/)?"[^"]*"')  # an entity tag as RFC 9110 writes it
DENIED_MESSAGE = "Authorization has been denied for this request."  # verified live, §5
# the swagger's 403 on every per-record route (325 of its 403s say exactly this)
NO_ACCESS_MESSAGE = "API User does not have access to Record."
FORBIDDEN_MESSAGE = "User doesn't have access to this resource."  # what --deny names


@dataclass
class SandboxConfig:
    api_key: str = "sandbox"
    seed: Path | None = None  # a seed directory; None = the generated seed, built in memory
    generate: dict[str, int] = field(default_factory=dict)  # collection -> extra records
    record_kb: int = 0  # generated records of about this many KB each (synth.pad_record)
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: float = 10.0  # requests/second per key (§5: 10/s on every plan)
    daily_quota: int = 40_000  # Plus plan (§5)
    search_ignores_case: bool = False  # see Account.search: the evidence is thin
    subdomain: str | None = None  # GET /Instance's INSTANCE_SUBDOMAIN (None: the seed's)
    # collection -> the most records the plan holds: a create beyond answers 402 (issue 20;
    # the text is what users report, "Record limit reached"; the status is the swagger's)
    record_limit: dict[str, int] = field(default_factory=dict)
    undeletable: frozenset[int] = frozenset()  # record ids whose DELETE answers 417
    # collection -> ids of records the API user may not see: each per-record route answers
    # 403 NO_ACCESS_MESSAGE (docs/api.md §10: "visibility follows the API user's own
    # permissions"). Whether lists include them is not recorded anywhere; ASSUMPTION (§11): they do
    # not (as in Insightly's own views, a user lists what they may see); `private_listed`
    # lists them as well. The tool must be right either way.
    private: dict[str, frozenset[int]] = field(default_factory=dict)
    private_listed: bool = False
    # A live account while a list is read (issue 22). list_churn: before each page after the
    # first of a plain list, a colleague deletes that many records (half among those already
    # served, half among the rest) and creates as many (appended: ids only grow);
    # shuffle_lists: each list request serves its records in another order (a server whose
    # order is unstable; docs/api.md §4 says id order, not documented).
    list_churn: int = 0
    shuffle_lists: bool = False
    # search_lag_s: /Search does not yet find a record written in the last N seconds (an index
    # that lags); normalise_writes: the server trims and collapses spaces in text it is sent
    # and lower-cases e-mail addresses (what it really does is not recorded, docs/api.md §11);
    # date_header: False leaves out the Date header; date_form: how answers write date-times
    # (space: `yyyy-MM-dd HH:mm:ss` as recorded; iso-z: `…T…Z`; offset: `…T…+00:00`;
    # fraction: `…T….250Z`), as other servers or proxies may
    search_lag_s: float = 0.0
    normalise_writes: bool = False
    date_header: bool = True
    date_form: str = "space"
    fault_rate: float = 0.0
    fault_seed: int = 0
    fault_slow_s: float = 40.0  # a "slow" fault answers after this long (past typical timeouts)
    state: Path | None = None
    if_match_status: int = 400  # 400 (seen live, docs/api.md §5) or 412 (documented)
    retry_after: int | None = None  # send Retry-After on burst 429s (the real API: unknown, §5)
    put_customfields: str = "merge"  # or "replace": imitate erase-on-PUT of older versions
    deny: frozenset[str] = frozenset()  # collections answering 403 (a plan/permission gap)
    now: Callable[[], datetime] | None = None
    quota_window: str = "rolling"  # rolling (a request counts for 24 h, §5) | calendar (UTC day)
    burst: int | None = None  # token-bucket size; None: one second of requests (rate_limit)
    max_concurrent: int | None = None  # requests in flight per key beyond this get 429
    writes: str = "lenient"  # lenient: read-only fields ignored, ISO dates taken | strict
    # recorded: answers as a live account's recorded ones (docs/api.md §10): unset custom
    # fields left out, the server's defaults ("" and 0 and false on leads), PUT answers 200;
    # complete: every field of every record, null when unset, PUT 201 (the swagger's)
    shape: str = "recorded"


class TokenBucket:
    """Per-key burst limit. ASSUMPTION (§11): Insightly's algorithm is not documented; a bucket that
    holds one second of requests and refills continuously is the common reading of "10/s"."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        burst: int | None = None,
    ) -> None:
        self.rate = rate
        self.capacity = float(burst) if burst else max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class DailyQuota:
    """Requests per 24 hours per instance; requests refused for the burst limit do not count.

    `rolling` (default): "the daily allowance expires on a rolling 24-hour window" (Insightly's
    own reference, quoted in §5): a request counts for 24 hours after it was made, so each one
    frees up a day later. Kept as counts per minute (a request frees up within a minute of
    24 h). `calendar`: ASSUMPTION (§11) of earlier versions, the count resets at UTC midnight.
    `POST /_sandbox/reset-quota` empties it either way."""

    WINDOW = timedelta(hours=24)

    def __init__(self, limit: int, account: Account, window: str = "rolling") -> None:
        self.limit = limit
        self.account = account
        self.window = window
        saved = account.get_meta("quota")
        state = json.loads(saved) if saved else {}
        self.day = state.get("day", self._today())
        self.used_today = int(state.get("used", 0))
        self.minutes: dict[str, int] = dict(state.get("minutes", {}))  # "yyyy-mm-dd HH:MM" -> n

    def _today(self) -> str:
        return self.account.now().astimezone(UTC).strftime("%Y-%m-%d")

    def _minute(self, when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")

    def _prune(self) -> None:
        if self.window == "calendar":
            today = self._today()
            if today != self.day:
                self.day, self.used_today = today, 0
            return
        oldest = self._minute(self.account.now() - self.WINDOW)
        for minute in [m for m in self.minutes if m <= oldest]:
            del self.minutes[minute]

    @property
    def used(self) -> int:
        self._prune()
        return self.used_today if self.window == "calendar" else sum(self.minutes.values())

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def frees_up(self) -> str | None:
        """When the next requests free up (UTC), and how many: for /_sandbox/stats."""
        self._prune()
        if self.window == "calendar":
            return f"{self._today()} 24:00 UTC: all" if self.used_today else None
        if not self.minutes:
            return None
        first = min(self.minutes)
        at = datetime.strptime(first, "%Y-%m-%d %H:%M").replace(tzinfo=UTC) + self.WINDOW
        return f"{at:%Y-%m-%d %H:%M} UTC: {self.minutes[first]}"

    def spend(self) -> bool:
        if self.remaining <= 0:
            return False
        if self.window == "calendar":
            self.used_today += 1
        else:
            minute = self._minute(self.account.now())
            self.minutes[minute] = self.minutes.get(minute, 0) + 1
        self._save()
        return True

    def reset(self) -> None:
        self.used_today, self.minutes = 0, {}
        self._save()

    def _save(self) -> None:
        state = {"day": self.day, "used": self.used_today, "minutes": self.minutes}
        self.account.set_meta("quota", json.dumps(state))


# header names as ASP.NET on IIS writes them (Insightly's help spells X-RateLimit-Limit):
# Starlette lower-cases every name, and a .NET client that looks for "X-Total-Count" with ==
# among the answer's headers found nothing (HTTP/1.1 keeps a name's case as sent; h11 does)
_HEADER_CASE = {
    name.lower().encode(): name.encode()
    for name in ("ETag", "WWW-Authenticate", "X-RateLimit-Limit", "X-RateLimit-Remaining")
}


def _header_name(name: bytes) -> bytes:
    return _HEADER_CASE.get(name.lower()) or b"-".join(
        part[:1].upper() + part[1:] for part in name.split(b"-")
    )


class AsAspNet:
    """ASGI middleware: what ASP.NET on IIS does around the API. Its routes are case-blind
    (`/V3.1/contacts` is `/v3.1/Contacts`; the app already takes any case after the
    version); every answer's header names come in the case the real API sends them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path[:6].lower() == "/v3.1/" and path[:6] != "/v3.1/":
            scope = {**scope, "path": "/v3.1/" + path[6:]}

        async def cased(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [(_header_name(k), v) for k, v in message.get("headers", [])],
                }
            await send(message)

        await self.app(scope, receive, cased)


class DroppedConnection(ConnectionResetError):
    """Raised after a partial response: uvicorn closes the socket, the client sees the
    connection drop with the write already applied."""


class DropAfterHeaders(Response):
    def __init__(self, content: bytes) -> None:
        super().__init__(content, status_code=201, media_type="application/json; charset=utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[:10], "more_body": True})
        raise DroppedConnection("sandbox fault: connection dropped after the write was applied")


def error(status: int, message: str) -> Response:
    return json_response({"Message": message}, status)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return raw_json(dumps(value), status, headers)


def raw_json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, headers=headers, media_type="application/json; charset=utf-8")


def load_account(config: SandboxConfig) -> Account:
    """Seed (or reopen) the account, then add any generated records."""
    account = Account(
        custom_fields={},
        instance={},
        now=config.now,
        put_customfields=config.put_customfields,
        writes=config.writes,
        shape=config.shape,
    )
    if config.state is not None and account.attach_state(config.state):
        _check_deny(account, config.deny)
        return account  # a persisted account is reopened as it was; --seed/--generate ignored
    seed = _read_seed(config.seed) if config.seed else synth.seed_account()
    account.define_custom_objects(seed.pop("custom_objects", []))
    _check_deny(account, config.deny)  # before any record is loaded, made or saved
    account.custom_fields = seed.pop("custom_fields")
    account.instance = seed.pop("instance")
    account.attachments = {int(a["FILE_ID"]): a for a in seed.pop("file_attachments", [])}
    account.comments = {int(c["COMMENT_ID"]): c for c in seed.pop("comments", [])}
    for collection in account.collections:
        account.load(collection, seed.get(collection, []))
    context = {name: list(c.ids) for name, c in account.collections.items()}
    custom = {
        o["OBJECT_NAME"]: (o, account.definitions(o["OBJECT_NAME"])) for o in account.custom_objects
    }
    gen = synth.Generator("generated", context, custom)
    for collection, count in config.generate.items():
        coll = account.collections.get(collection) or _custom_named(account, collection)
        name = coll.spec.name
        start = max(coll.next_id, 1_000_000)
        records: Iterable[dict[str, Any]] = gen.records(name, start, count)
        if config.record_kb:
            definitions = account.definitions(name)
            records = (_padded(r, config.record_kb, definitions) for r in records)
        account.load(name, records)
        context[name] = list(coll.ids)
    if config.state is not None:
        account.save_all()
        account.set_meta("attachments", json.dumps(account.attachments))
        account.set_meta("comments", json.dumps(account.comments))
    return account


def _check_deny(account: Account, deny: frozenset[str]) -> None:
    """--deny names collections as the API's paths do (the account's custom objects too)."""
    if unknown := sorted(deny - set(account.specs) - {"Instance"}):
        close = difflib.get_close_matches(unknown[0], list(account.specs), n=1)
        raise SeedError(
            f"--deny {unknown[0]}: no such collection"
            + (f"; did you mean {close[0]}?" if close else " (names as in the API's paths: Leads)")
        )


def _padded(record: dict[str, Any], kb: int, definitions: list[dict[str, Any]]) -> dict[str, Any]:
    synth.pad_record(record, kb, definitions)
    return record


def _custom_named(account: Account, name: str) -> Collection:
    """`--generate site__c=N`: the seed's custom object of that name, in any case."""
    for obj in account.custom_objects:
        if obj["OBJECT_NAME"].lower() == name.lower():
            return account.collections[obj["OBJECT_NAME"]]
    known = ", ".join(o["OBJECT_NAME"] for o in account.custom_objects) or "none"
    raise SeedError(f"--generate {name}: the seed has no such custom object (it has: {known})")


SEED_NEEDS = ("instance", "custom_fields")  # the files a seed folder cannot do without


def _read_seed(directory: Path) -> dict[str, Any]:
    """A seed folder: one JSON file per collection, the account's instance.json and
    custom_fields.json (the others may be left out: empty)."""
    if not directory.is_dir():
        raise SeedError(f"--seed {directory}: no such folder")
    seed = {}
    for path in sorted(directory.glob("*.json")):
        try:
            seed[path.stem] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise SeedError(f"{path}: not a JSON file the sandbox can read ({exc})") from None
    missing = [f"{name}.json" for name in SEED_NEEDS if name not in seed]
    if missing:
        raise SeedError(
            f"--seed {directory}: a seed folder needs {' and '.join(missing)} "
            "(sample_data/sandbox has the form)"
        )
    return seed


def _query(request: Request) -> dict[str, str]:
    """Query parameters by lower-case name: ASP.NET model binding ignores the case of names."""
    return {k.lower(): v for k, v in request.query_params.multi_items()}


def _window(params: dict[str, str]) -> tuple[int, int] | None:
    """A list's `skip` and `top` (default 100, silently capped at 500: §4, v3.1 behaviour
    assumed from v2.2); None when either is negative (400)."""
    skip, top = _int_or(params.get("skip"), 0), _int_or(params.get("top"), 100)
    return None if skip < 0 or top < 0 else (skip, min(top, 500))


def _int_or(text: str | None, default: int) -> int:
    """ASSUMPTION (§11; ASP.NET model binding): an optional value that does not parse is treated as
    absent, not refused — `skip=abc` is `skip=0`, `updated_after_utc=None` no filter."""
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


# the invariant culture's own forms, which ASP.NET reads a DateTime query value in
_CULTURE_FORMS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")


def _parse_after(text: str) -> str | None:
    """`updated_after_utc` as the real API reads it (§4): ISO `…T…Z` and `yyyy-MM-dd
    HH:mm:ss` are recorded working; ASP.NET binds the value with DateTime.Parse under the
    invariant culture, so fractional seconds, offsets (turned into UTC), no seconds, `/` for
    `-` and `10/1/2026 12:00:00 AM` filter too (ASSUMPTION: from the framework, docs/api.md
    §4; no answer to these forms is recorded). A value that reads as none is ignored, as
    model binding ignores it. Stored times are whole seconds, so cutting a fraction off keeps
    "strictly after" exact."""
    text = text.strip()
    if slashed := re.fullmatch(r"(\d{4})/(\d{1,2})/(\d{1,2})([ T].*)?", text):
        year, month, day, rest = slashed.groups()
        text = f"{year}-{int(month):02d}-{int(day):02d}{rest or ''}"
    when = iso_instant(text)  # as naive UTC, an offset turned into it
    for form in _CULTURE_FORMS if when is None else ():
        try:
            when = datetime.strptime(text.upper(), form)
            break
        except ValueError:
            continue
    return when.strftime(DATE_FMT) if when is not None else None


class Sandbox:
    """Holds the account, the limits and the statistics; builds the Starlette app."""

    def __init__(self, config: SandboxConfig, account: Account | None = None) -> None:
        self.config = config
        self.account = account or load_account(config)
        self.account.search_ignores_case = config.search_ignores_case
        for coll in self.account.collections.values():
            coll.omit_unset(config.shape == "recorded")
        if config.subdomain:
            self.account.instance = {
                **self.account.instance,
                "INSTANCE_SUBDOMAIN": config.subdomain,
            }
            # another account: another INSTANCE_ID in its users (GET /Users/Me) too; any
            # number does, made from the subdomain so that it is the same on every start
            # (ASSUMPTION, docs/api.md §11: the real API's numbers are not recorded)
            number = 100_000 + zlib.crc32(config.subdomain.encode()) % 900_000
            users = self.account.collections["Users"]
            for uid in list(users.ids):  # put: a cached answer of the record goes with it
                users.put({**users.records[uid], "INSTANCE_ID": number})
        self.bucket = TokenBucket(config.rate_limit, burst=config.burst)
        self.quota = DailyQuota(config.daily_quota, self.account, config.quota_window)
        self.in_flight = 0
        self.faults = random.Random(config.fault_seed)
        self.jitter = random.Random(config.fault_seed + 1)
        self.colleague = random.Random(config.fault_seed + 2)  # list_churn, shuffle_lists
        self.stats: Counter[tuple[str, str, int]] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self._canonical = {
            name.lower(): name
            for name in [
                *self.account.specs,  # custom objects' names too: /site__c is /Site__c
                "Instance",
                "CustomFields",
                "CustomObjects",
                "Pipeline",
                "PipelineStage",
                "StateChange",
                "StateHistory",
                "Links",
                "Tags",
                "SearchByTag",
                "Search",
                "Me",
                "Notes",
            ]
        }
        # when each write arrived (time.monotonic of this process): lets a test that runs the
        # sandbox in-process say whether a client sent anything after a given moment
        self.write_arrivals: list[float] = []
        # set by a test that runs the sandbox in-process: writes that arrive wait until it is
        # cleared, so a client can be held in the middle of a run for as long as a test needs
        self.hold_writes = threading.Event()
        self._valid_auth = {
            "Basic " + base64.b64encode(v.encode()).decode()
            for v in (config.api_key, config.api_key + ":")
        }
        self.app = Starlette(
            routes=[
                Route("/_sandbox/stats", self.admin_stats, methods=["GET"]),
                Route("/_sandbox/reset-quota", self.admin_reset_quota, methods=["POST"]),
                Route("/_sandbox/records/{collection}", self.admin_records, methods=["GET"]),
                Route(
                    "/v3.1/{path:path}", self.api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]
                ),
            ],
            # gzip when asked, as live answers come (docs/api.md §5); Starlette's own middleware
            middleware=[Middleware(AsAspNet), Middleware(GZipMiddleware, minimum_size=1024)],
        )

    # ------------------------------------------------------------------ admin
    async def admin_stats(self, request: Request) -> Response:
        return json_response(
            {
                "requests": [
                    {"method": m, "path": p, "status": s, "count": n}
                    for (m, p, s), n in sorted(self.stats.items())
                ],
                "records": {name: len(c.ids) for name, c in self.account.collections.items()},
                "quota": {
                    "limit": self.quota.limit,
                    "used": self.quota.used,
                    "remaining": self.quota.remaining,
                },
                "faults": dict(self.faults_injected),
                "quota_window": self.quota.window,
                "next_free": self.quota.frees_up(),
                "in_flight": self.in_flight,
            }
        )

    async def admin_reset_quota(self, request: Request) -> Response:
        self.quota.reset()
        return json_response({"remaining": self.quota.remaining})

    async def admin_records(self, request: Request) -> Response:
        coll = self.account.collections.get(request.path_params["collection"])
        if coll is None:
            return error(404, "No such collection.")
        return raw_json(b"[" + b",".join(coll.json_of(i) for i in coll.ids) + b"]")

    # ------------------------------------------------------------------ API
    def _authorised(self, request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":  # a scheme's name is case-blind (RFC 7235, .NET)
            return False
        header = f"Basic {credentials.strip()}"
        if header in self._valid_auth:
            return True
        # base64(key:anything): the password is ignored (§1)
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded.split(":", 1)[0] == self.config.api_key

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.quota.limit),
            "X-RateLimit-Remaining": str(self.quota.remaining),
            # the account's clock, the one DATE_UPDATED_UTC is written by (a test may set it),
            # as every HTTP server says its time; uvicorn adds none of its own (server.py)
            **(
                {"Date": format_datetime(self.account.now().astimezone(UTC), usegmt=True)}
                if self.config.date_header
                else {}
            ),
        }

    async def api(self, request: Request) -> Response:
        if request.method in ("POST", "PUT", "DELETE"):
            self.write_arrivals.append(time.monotonic())
            while self.hold_writes.is_set():
                await asyncio.sleep(0.01)
        # ASP.NET Web API routes ignore case: /v3.1/contacts is /v3.1/Contacts (the Singer taps
        # ask for lower-case paths and work against the real API)
        segments = [
            self._canonical.get(s.lower(), s) for s in request.path_params["path"].split("/") if s
        ]
        template = "/v3.1/" + "/".join(_template_of(segments))
        self.in_flight += 1
        try:
            response = await self._api(request, segments)
        finally:
            self.in_flight -= 1
        if self.config.date_form != "space" and not isinstance(response, DropAfterHeaders):
            response = _reform_dates(response, self.config.date_form)
        if not isinstance(response, DropAfterHeaders):
            # "every API call response" carries them (§5): 401 and 5xx too
            response.headers.update(self._limit_headers())
        self.stats[(request.method, template, response.status_code)] += 1
        return response

    async def _api(self, request: Request, segments: list[str]) -> Response:
        if not self._authorised(request):
            return error(401, DENIED_MESSAGE)
        limit = self.config.max_concurrent
        if limit is not None and self.in_flight > limit:
            # "the API seems to 429 on both concurrency and frequency" (a tap's authors, §5)
            return json_response(
                {"Message": f"API rate limit exceeded: at most {limit} requests at a time."},
                429,
                self._limit_headers(),
            )
        if not self.bucket.take():
            headers = self._limit_headers()
            if self.config.retry_after is not None:
                headers["Retry-After"] = str(self.config.retry_after)
            return json_response(
                {
                    "Message": "API rate limit exceeded: at most "
                    f"{self.config.rate_limit:g} requests per second."
                },
                429,
                headers,
            )
        if not self.quota.spend():
            return json_response(
                {"Message": "API daily request limit reached. Try again tomorrow."},
                429,
                self._limit_headers(),
            )
        delay = self.config.latency_ms + self.jitter.uniform(0, self.config.jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        is_write = request.method in ("POST", "PUT", "DELETE")
        fault = self._pick_fault(is_write)
        if fault in ("500", "503"):
            return error(
                int(fault), "An error has occurred." if fault == "500" else "Service Unavailable"
            )
        if fault == "slow" and not is_write:
            await asyncio.sleep(self.config.fault_slow_s)
        try:
            response = await self._dispatch(request, segments)
        except WriteRejected as exc:
            response = error(400, str(exc))
        if fault == "slow":  # a slow write: applied, then the answer comes too late
            await asyncio.sleep(self.config.fault_slow_s)
        if fault == "drop" and response.status_code < 300:
            return DropAfterHeaders(bytes(response.body))
        return response

    def _pick_fault(self, is_write: bool) -> str | None:
        if self.config.fault_rate <= 0 or self.faults.random() >= self.config.fault_rate:
            return None
        kinds = ["500", "503", "slow", "drop"] if is_write else ["500", "503", "slow"]
        kind = self.faults.choice(kinds)
        self.faults_injected[kind] += 1
        return kind

    async def _dispatch(self, request: Request, seg: list[str]) -> Response:
        method = request.method
        account = self.account
        if not seg:
            return error(404, "No HTTP resource was found that matches the request URI.")
        name = seg[0]
        if name == "Instance" and len(seg) == 1 and method == "GET":
            if name in self.config.deny:  # a user who may not read the account's settings
                return error(403, FORBIDDEN_MESSAGE)
            return json_response(account.instance)
        if name == "CustomObjects" and method == "GET" and len(seg) <= 2:
            if len(seg) == 1:
                return json_response(account.custom_objects)
            found = [o for o in account.custom_objects if o["OBJECT_NAME"] == seg[1]]
            if not found:
                return error(404, f"Custom object {seg[1]} not found.")
            return json_response(found[0])
        if name == "CustomFields" and len(seg) == 2 and method == "GET":
            return json_response(self._custom_fields(seg[1]))
        if name == "Tags" and len(seg) == 1 and method == "GET":
            return self._all_tags(request)
        if name == "FileAttachments" and len(seg) == 2 and method == "GET":
            try:
                meta, content = account.attachment_content(int(seg[1]))
            except (KeyError, ValueError):
                return error(404, "File Attachment not found.")
            return Response(
                content,
                media_type=str(meta.get("CONTENT_TYPE") or "application/octet-stream"),
                headers={"Content-Disposition": 'attachment; filename="download"'},
            )
        if name not in account.specs:
            if name.rstrip("s") in account.specs or name + "s" in account.specs:
                # singular/plural mix-ups answer 405 (§1, [LSW])
                return error(405, "The requested resource does not support this HTTP method.")
            return error(404, "No HTTP resource was found that matches the request URI.")
        if name in self.config.deny:
            return error(403, FORBIDDEN_MESSAGE)
        spec = account.specs[name]
        if len(seg) == 1:
            if method == "GET":
                return self._list(request, name, search=False)
            if method == "POST" and spec.writable and name != "Notes":
                return await self._create(request, name)
            if method == "PUT" and spec.writable:
                return await self._update(request, name)
            return error(405, "The requested resource does not support this HTTP method.")
        if seg[1] == "Search" and len(seg) == 2 and method == "GET" and spec.searchable:
            return self._list(request, name, search=True)
        if seg[1] == "SearchByTag" and len(seg) == 2 and method == "GET" and "TAGS" in spec.fields:
            tag = _query(request).get("tagname")
            if not tag:
                return error(400, "tagName is required.")
            coll = account.collections[name]
            ids = [
                i
                for i in coll.ids
                if any(t.get("TAG_NAME") == tag for t in coll.records[i].get("TAGS") or [])
            ]
            return self._page(request, name, ids)
        if name == "Users" and seg[1] == "Me" and len(seg) == 2 and method == "GET":
            return self._one(request, name, account.me()["USER_ID"])
        try:
            rid = int(seg[1])
        except ValueError:
            return error(400, "The request is invalid.")
        if rid in self.config.private.get(name, ()):
            return error(403, NO_ACCESS_MESSAGE)  # the record and all below it
        if len(seg) == 2:
            if method == "GET":
                return self._one(request, name, rid)
            if method == "PUT" and spec.writable:  # PUT /{Object}/{id} is accepted too (§5)
                return await self._update(request, name, rid)
            if method == "DELETE" and spec.writable:
                if rid in self.config.undeletable:
                    return error(417, "Delete failed")  # the swagger's 417 for deletes
                try:
                    account.delete(name, rid)
                except KeyError:
                    return error(404, f"{spec.singular} {rid} not found.")
                return Response(status_code=202)
        if len(seg) == 3 and seg[2] == "Notes" and name in NOTE_PARENTS:
            if rid not in account.collections[name].records:
                return error(404, f"{spec.singular} {rid} not found.")
            if method == "POST":
                body = self._normalised(await _body(request))
                note = account.create("Notes", body, parent=(name, rid))
                return json_response(note, 201)
            if method == "GET":
                return self._linked(request, "Notes", name, rid)
        child = seg[2] if len(seg) == 3 and method == "GET" else None
        parents = {
            "FileAttachments": ATTACHMENT_PARENTS,
            "Comments": COMMENT_PARENTS,
            "Emails": EMAIL_PARENTS,
            "Tasks": ACTIVITY_PARENTS,
            "Events": ACTIVITY_PARENTS,
            **OWN_ARRAYS,
        }
        if child in parents and name in parents[child]:
            if rid not in account.collections[name].records:
                return error(404, f"{spec.singular} {rid} not found.")
            if child in ("Emails", "Tasks", "Events"):
                return self._linked(request, child, name, rid)
            record = account.collections[name].records[rid]
            items = (
                account.attachments_of(name, rid)
                if child == "FileAttachments"
                else account.comments_of(name, rid)
                if child == "Comments"
                else record.get(child.upper()) or []
            )
            return self._items_page(request, items)
        if seg[2:3] == ["Links"] and "LINKS" in spec.fields:
            return await self._links(request, name, rid, seg[3:])
        if seg[2:] == ["Tags"] and "TAGS" in spec.fields:
            return await self._tags(request, name, rid)
        if len(seg) == 3 and name in ("Opportunities", "Projects", "Leads"):
            changed = await self._pipeline_route(request, name, rid, seg[2])
            if changed is not None:
                return changed
        return error(404, "No HTTP resource was found that matches the request URI.")

    async def _links(self, request: Request, name: str, rid: int, rest: list[str]) -> Response:
        account, method = self.account, request.method
        coll = account.collections[name]
        if rid not in coll.records:
            return error(404, f"{coll.spec.singular} {rid} not found.")
        if not rest and method == "GET":  # paged like every list (swagger: skip, top)
            return self._items_page(request, coll.records[rid].get("LINKS") or [])
        if not rest and method == "POST":
            return json_response(account.add_link(name, rid, await _body(request)), 201)
        if not rest and method == "PUT":
            try:
                return json_response(account.update_link(name, rid, await _body(request)))
            except KeyError:
                return error(404, "Link not found.")
        if len(rest) == 1 and method == "DELETE":
            try:
                account.remove_link(name, rid, int(rest[0]))
            except (KeyError, ValueError):
                return error(404, f"Link {rest[0]} not found.")
            return Response(status_code=202)
        return error(405, "The requested resource does not support this HTTP method.")

    async def _tags(self, request: Request, name: str, rid: int) -> Response:
        """GET 200 (the swagger's 201 for a GET is an artefact, §5), POST/PUT 201, DELETE 202."""
        account, method = self.account, request.method
        coll = account.collections[name]
        if rid not in coll.records:
            return error(404, f"{coll.spec.singular} {rid} not found.")
        if method == "GET":
            return json_response(coll.records[rid].get("TAGS") or [])
        body = await _body(request)
        items = body if isinstance(body, list) else [body]
        if not all(isinstance(i, dict) and isinstance(i.get("TAG_NAME"), str) for i in items):
            return error(
                400, 'Expected {"TAG_NAME": …}' + (" items" if isinstance(body, list) else "")
            )
        names = [i["TAG_NAME"] for i in items]
        mode = {"POST": "add", "PUT": "replace", "DELETE": "remove"}.get(method)
        if mode is None:
            return error(405, "The requested resource does not support this HTTP method.")
        record = account.set_tags(name, rid, names, mode=mode)
        if method == "DELETE":
            return Response(status_code=202)
        return json_response(record.get("TAGS") or [], 201)

    def _custom_fields(self, asked: str) -> list[dict[str, Any]]:
        """An object's definitions, named by its plural or its singular in any case (`[]`
        when it has none); an object unknown, or of a type that cannot have custom fields,
        gets every object's, as the real API answers (docs/api.md §3)."""
        account = self.account
        wanted = asked.casefold()
        for name, spec in account.specs.items():
            if wanted in (name.casefold(), spec.singular.casefold()) and spec.has_custom_fields:
                return account.definitions(name)  # [] when it has none
        return [d for name in account.custom_fields for d in account.definitions(name)]

    def _all_tags(self, request: Request) -> Response:
        """`GET /Tags?record_type=contacts`: the tags in use on that object type (§4)."""
        kinds = {
            "contacts": "Contacts",
            "leads": "Leads",
            "opportunities": "Opportunities",
            "organisations": "Organisations",
            "projects": "Projects",
            "emails": "Emails",
        }
        record_type = (_query(request).get("record_type") or "").lower()
        if record_type not in kinds:
            return error(400, "record_type must be one of " + ", ".join(kinds) + ".")
        coll = self.account.collections[kinds[record_type]]
        names = sorted({t["TAG_NAME"] for r in coll.records.values() for t in r.get("TAGS") or []})
        return self._items_page(request, [{"TAG_NAME": n} for n in names])

    async def _pipeline_route(
        self, request: Request, name: str, rid: int, what: str
    ) -> Response | None:
        """Pipeline, stage and state changes (docs/api.md §2.1): 200 with the record, 202 for a
        cleared pipeline (swagger); the record itself answers 404 when any part is missing."""
        account, method = self.account, request.method
        try:
            if what == "Pipeline" and method == "PUT":
                return json_response(account.change_pipeline(name, rid, await _body(request)))
            if what == "Pipeline" and method == "DELETE":
                account.clear_pipeline(name, rid)
                return Response(status_code=202)
            if what == "PipelineStage" and method == "PUT":
                return json_response(account.change_stage(name, rid, await _body(request)))
            if name == "Opportunities" and what == "StateChange" and method == "PUT":
                return json_response(account.change_state(rid, await _body(request)))
            if name == "Opportunities" and what == "StateHistory" and method == "GET":
                if rid not in account.collections[name].records:
                    raise KeyError(rid)
                return json_response(account.state_history.get(rid, []))
        except KeyError:
            return error(404, "Record, Pipeline or Pipeline Stage not found")
        return None

    def _list(self, request: Request, name: str, *, search: bool) -> Response:
        params = _query(request)
        kwargs: dict[str, Any] = {}
        # updated_after_utc filters plain lists too, not only /Search (docs/api.md §4)
        after = params.get("updated_after_utc")
        if after is not None and _parse_after(after) is not None:
            kwargs["updated_after"] = _parse_after(after)
        if search:
            field_name, field_value = params.get("field_name"), params.get("field_value")
            if (field_name is None) != (field_value is None):
                return error(400, "field_name and field_value must be given together.")
            if field_name is not None:
                spec = self.account.specs[name]
                known = field_name in spec.fields or any(
                    d["FIELD_NAME"] == field_name for d in self.account.definitions(name)
                )
                if not known:
                    return error(400, f"Invalid field_name: {field_name}.")
                kwargs.update(field_name=field_name, field_value=field_value)
        if not kwargs:
            self._churn(name, _int_or(params.get("skip"), 0))
        ids = self.account.search(name, **kwargs) if kwargs else self.account.collections[name].ids
        if search and self.config.search_lag_s:
            ids = self._indexed(name, ids)
        if self.config.shuffle_lists:
            ids = self.colleague.sample(ids, len(ids))
        return self._page(request, name, ids)

    def _indexed(self, name: str, ids: list[Any]) -> list[Any]:
        """`search_lag_s`: what a lagging index finds, records written long enough ago."""
        records = self.account.collections[name].records
        settled = (self.account.now() - timedelta(seconds=self.config.search_lag_s)).astimezone(UTC)
        cutoff = settled.strftime(DATE_FMT)
        return [i for i in ids if (records[i].get("DATE_UPDATED_UTC") or "") <= cutoff]

    def _normalised(self, body: Any) -> Any:
        """`normalise_writes`: text trimmed and its spaces collapsed, e-mail lower-cased."""
        if not self.config.normalise_writes or not isinstance(body, dict):
            return body

        def norm(name: str, value: Any) -> Any:
            if not isinstance(value, str):
                return value
            value = " ".join(value.split())
            return value.lower() if "EMAIL" in name.upper() else value

        out = {k: norm(k, v) for k, v in body.items()}
        if isinstance(out.get("CUSTOMFIELDS"), list):
            out["CUSTOMFIELDS"] = [
                {**c, "FIELD_VALUE": norm(str(c.get("FIELD_NAME")), c.get("FIELD_VALUE"))}
                if isinstance(c, dict)
                else c
                for c in out["CUSTOMFIELDS"]
            ]
        return out

    def _churn(self, name: str, skip: int) -> None:
        """`list_churn`: before a page after the first, records are deleted (half of them
        among those already served, which shifts the later pages; half among the rest)
        and as many created."""
        churn = self.config.list_churn
        if not churn or not skip:
            return
        ids = [i for i in self.account.collections[name].ids if isinstance(i, int)]
        if not ids:
            return
        served, rest = ids[:skip], ids[skip:]
        gone = self.colleague.sample(served, min((churn + 1) // 2, len(served)))
        gone += self.colleague.sample(rest, min(churn // 2, len(rest)))
        for rid in gone:
            self.account.copy_of(name, rid)
            self.account.delete(name, rid)

    def _page(self, request: Request, name: str, ids: list[int]) -> Response:
        params = _query(request)
        if (window := _window(params)) is None:
            return error(400, "The request is invalid.")
        skip, top = window
        coll = self.account.collections[name]
        hidden = self.config.private.get(name)
        if hidden and not self.config.private_listed:
            ids = [i for i in ids if i not in hidden]
        brief = (params.get("brief") or "false").lower() == "true"
        body = b"[" + b",".join(coll.json_of(i, brief=brief) for i in ids[skip : skip + top]) + b"]"
        etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        headers = {"ETag": etag}
        if (params.get("count_total") or "false").lower() == "true":
            headers["X-Total-Count"] = str(len(ids))
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return raw_json(body, 200, headers)

    def _linked(self, request: Request, child: str, name: str, rid: int) -> Response:
        """`GET /{Object}/{id}/Notes|Emails|Tasks|Events`: the `child` records linked to
        the record, filtered by `updated_after_utc` as searches are (swagger), paged."""
        after = _parse_after(_query(request).get("updated_after_utc") or "")
        account = self.account
        candidates = account.search(child, updated_after=after) if after else None
        return self._page(request, child, account.linked_to(child, name, rid, candidates))

    def _items_page(self, request: Request, items: list[Any]) -> Response:
        """A record's own list (links, files, comments, dates), paged like every list:
        `skip`, `top` (at most 500), `count_total`."""
        params = _query(request)
        if (window := _window(params)) is None:
            return error(400, "The request is invalid.")
        skip, top = window
        counted = (params.get("count_total") or "false").lower() == "true"
        return json_response(
            items[skip : skip + top],
            headers={"X-Total-Count": str(len(items))} if counted else None,
        )

    def _one(self, request: Request, name: str, rid: int) -> Response:
        coll = self.account.collections[name]
        if rid not in coll.records:
            return error(404, f"{coll.spec.singular} {rid} not found.")
        etag = coll.etag_of(rid)
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return raw_json(coll.json_of(rid), 200, {"ETag": etag})

    async def _create(self, request: Request, name: str) -> Response:
        limit = self.config.record_limit.get(name)
        if limit is not None and len(self.account.collections[name].ids) >= limit:
            return error(402, "Record limit reached")
        record = self.account.create(name, self._normalised(await _body(request)))
        coll = self.account.collections[name]
        rid = record[coll.spec.id_field]
        return raw_json(coll.json_of(rid), 201, {"ETag": coll.etag_of(rid)})

    async def _update(self, request: Request, name: str, path_id: int | None = None) -> Response:
        body = self._normalised(await _body(request))
        coll = self.account.collections[name]
        id_field = coll.spec.id_field
        if isinstance(body, dict) and path_id is not None:
            body.setdefault(id_field, path_id)
        rid = body.get(id_field) if isinstance(body, dict) else None
        if isinstance(rid, int) and rid in self.config.private.get(name, ()):
            return error(403, NO_ACCESS_MESSAGE)
        if_match = request.headers.get("if-match")
        if if_match is not None and if_match != "*" and not _ETAG.fullmatch(if_match):
            return error(400, f"If-Match header value {if_match} is not valid.")  # seen live
        stale = (
            if_match not in (None, "*")
            and isinstance(rid, int)
            and rid in coll.records
            and if_match != coll.etag_of(rid)
        )
        if stale and self.config.if_match_status == 400:
            return error(400, f"If-Match header value {if_match} is not valid.")  # seen live
        if stale:
            return error(412, "The record has been modified since it was read (If-Match).")
        try:
            record = self.account.update(name, body)
        except KeyError:
            return error(404, f"{coll.spec.singular} {rid} not found.")
        rid = record[id_field]
        # the swagger says 201 (§5); a live PUT answered 200 (§10)
        status = 200 if self.config.shape == "recorded" else 201
        return raw_json(coll.json_of(rid), status, {"ETag": coll.etag_of(rid)})


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting thousands deep (ASP.NET's JSON reader stops at 64 levels too)
        raise WriteRejected("The request body is not valid JSON.") from None


_DATETIME = re.compile(rb'"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)"')
_DATE_FORMS = {
    "iso-z": rb'"\1T\2Z"',
    "offset": rb'"\1T\2+00:00"',
    "fraction": rb'"\1T\2.250Z"',
}


def _reform_dates(response: Response, form: str) -> Response:
    """`date_form`: every date-time of a JSON answer written in another form."""
    if not (response.media_type or "").startswith("application/json"):
        return response
    body = _DATETIME.sub(_DATE_FORMS[form], bytes(response.body))
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body, response.status_code, headers=headers, media_type=response.media_type)


def _template_of(segments: list[str]) -> list[str]:
    return ["{id}" if s.isdigit() else s for s in segments] if segments else []


def create_app(config: SandboxConfig | None = None) -> Starlette:
    return Sandbox(config or SandboxConfig()).app


class SandboxAccounts:
    """Several sandbox accounts behind one address, as a pod serves many instances: the API
    key picks the account (its own records, subdomain, rate limit and daily quota); a key no
    account has goes to the first, which answers 401. The admin routes take `?account=
    SUBDOMAIN` (default: the first)."""

    def __init__(self, sandboxes: list[Sandbox]) -> None:
        self.sandboxes = sandboxes
        self._by_key = {s.config.api_key: s for s in sandboxes}

    @property
    def account(self) -> Account:  # the first: what a single sandbox's callers expect
        return self.sandboxes[0].account

    def close(self) -> None:
        for sandbox in self.sandboxes:
            sandbox.account.close()

    def _pick(self, scope: Scope) -> Sandbox | None:
        """The account a request is for; None: an admin route names no account served."""
        if scope.get("path", "").startswith("/_sandbox/"):
            query = dict(
                part.split("=", 1)
                for part in scope.get("query_string", b"").decode("latin-1").split("&")
                if "=" in part
            )
            wanted = query.get("account")
            if not wanted:
                return self.sandboxes[0]
            for sandbox in self.sandboxes:
                if sandbox.account.instance.get("INSTANCE_SUBDOMAIN") == wanted:
                    return sandbox
            return None  # a typo must not reset another account's quota
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        if header.startswith(b"Basic "):
            try:
                key = base64.b64decode(header[6:], validate=True).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
            return self._by_key.get(key, self.sandboxes[0])
        return self.sandboxes[0]

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._pick(scope)
        if target is None:
            names = [s.account.instance.get("INSTANCE_SUBDOMAIN") for s in self.sandboxes]
            await json_response({"Message": f"no such account; served: {names}"}, 404)(
                scope, receive, send
            )
            return
        await target.app(scope, receive, send)
