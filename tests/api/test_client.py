"""The API client: pacing, retries, quota, typed errors, paging, secrets."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import httpx
import pytest

from insightly_etl.api import InsightlyClient
from insightly_etl.api.retry import RetryPolicy
from insightly_etl.config import Settings, load_settings
from insightly_etl.errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknown,
    QuotaExhausted,
    RateLimited,
    ReserveReached,
    ServerError,
    TransportError,
    UnstableOrder,
    ValidationError,
)
from insightly_etl.sandbox import Sandbox
from tests.conftest import KEY

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-KEY-do-not-leak-91c2"


class FakeTime:
    """Virtual time for one request at a time (each sleep moves the clock on)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def settings(url: str = "https://api.na1.insightly.com/v3.1/") -> Settings:
    return load_settings(api_key=SECRET, api_url=url)


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response], t: FakeTime | None = None, **kw
) -> InsightlyClient:
    t = t or FakeTime()
    return InsightlyClient(
        settings(),
        transport=httpx.MockTransport(handler),
        clock=t.clock,
        sleep=t.sleep,
        seed=1,
        **kw,
    )


def ok(data=None, remaining: int = 999, **headers: str) -> httpx.Response:
    return httpx.Response(
        200,
        json=data if data is not None else [],
        headers={"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": str(remaining), **headers},
    )


def answer(status: int, message: str = "x", remaining: int = 999, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"Message": message},
        headers={"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": str(remaining), **headers},
    )


# ---------------------------------------------------------------- pacing against the sandbox


@pytest.mark.slow
async def test_300_requests_at_the_ceiling_with_8_in_flight_and_no_429(make_sandbox) -> None:
    sb: Sandbox = make_sandbox(rate_limit=10, latency_ms=50)
    client = InsightlyClient(
        load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/"),
        transport=httpx.ASGITransport(app=sb.app),
        rate=10,
        max_in_flight=8,
    )
    async with client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(client.get("Users/Me") for _ in range(300)))
        elapsed = loop.time() - start
    statuses = {s for (m, p, s) in sb.stats}
    assert statuses == {200}, sb.stats
    assert client.stats.throttled == 0 and client.stats.sent == 300
    assert elapsed >= 29.0  # never faster than the ceiling (how close to it: make bench)
    assert client.stats.retries == 0 and client.stats.waited_backoff == 0  # never held back
    assert client.quota.remaining == 10**9 - 300


async def test_concurrent_requests_burst_then_get_evenly_spaced_slots() -> None:
    """50 requests at once, 50/s: a burst of 8 (the bucket's allowance) leaves at once, then
    start slots exactly 1/50 s apart. Virtual time (a clock that stands still) makes it exact;
    real rates are make bench's."""
    now = 1000.0
    slots: list[float] = []

    async def sleep(seconds: float) -> None:
        slots.append(round(seconds, 9))
        await asyncio.sleep(0)

    client = InsightlyClient(
        settings(),
        transport=httpx.MockTransport(lambda request: ok()),
        rate=50,
        max_in_flight=8,
        clock=lambda: now,
        sleep=sleep,
    )
    async with client:
        await asyncio.gather(*(client.get("Users/Me") for _ in range(50)))
    # eight start at once (no sleep); each other waits for its own slot
    assert sorted(slots) == [round(i / 50, 9) for i in range(1, 43)]
    assert client.stats.sent == 50


# ---------------------------------------------------------------- 429s and quota


async def test_recovers_from_a_429_storm_slowing_down_then_back_to_the_ceiling() -> None:
    t = FakeTime()
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if 5 <= calls["n"] < 15:
            return answer(429, "API rate limit exceeded")
        return ok()

    async with mock_client(handler, t, rate=10, max_in_flight=4) as c:
        rates = []
        for _ in range(60):
            await c.get("Users/Me")
            rates.append(c.limiter.rate)
    assert c.stats.throttled == 10 and c.stats.retries == 10
    # each 429 slowed it down: half, then 10% for each one too close to the last to measure
    # (read after the success that ended the storm: one step back up already)
    assert min(rates) == pytest.approx(5 * 0.9**9 + 0.1)
    # and it climbs back by 1% of the ceiling an answer, without a limit learned from so little
    after = rates[rates.index(min(rates)) :]
    assert after == sorted(after) and rates[-1] == pytest.approx(min(rates) + 55 * 0.1)
    assert c.learned_limits() == {}
    assert c.stats.by_status[("read", 200)] == 60


async def test_retry_after_is_honoured() -> None:
    t = FakeTime()
    seq = iter([answer(429, "slow down", **{"Retry-After": "7"}), ok()])
    async with mock_client(lambda r: next(seq), t) as c:
        await c.get("Users/Me")
    assert t.sleeps == [7.0] and t.now == 1007.0  # the retry waited exactly that long
    assert c.stats.retries == 1


async def test_quota_exhausted_is_raised_and_never_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer(429, "API daily request limit reached", remaining=0)

    async with mock_client(handler) as c:
        with pytest.raises(QuotaExhausted) as info:
            await c.get("Contacts")
    assert len(calls) == 1
    assert info.value.exit_code == 75
    assert c.quota.remaining == 0 and c.quota.limit == 1000


async def test_budget_refuses_to_start_the_request_past_max_requests() -> None:
    calls = []
    async with mock_client(lambda r: calls.append(r) or ok(), max_requests=3) as c:
        for _ in range(3):
            await c.get("Users/Me")
        with pytest.raises(BudgetExhausted):
            await c.get("Users/Me")
    assert len(calls) == 3


async def test_reserve_leaves_requests_for_other_integrations() -> None:
    remaining = iter(range(10, 0, -1))
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return ok(remaining=next(remaining) - 1)

    async with mock_client(handler, reserve=5) as c:
        with pytest.raises(ReserveReached) as info:
            for _ in range(10):
                await c.get("Users/Me")
    # remaining after each call: 9, 8, 7, 6, 5 -> the next would leave 4 < 5
    assert len(calls) == 5 and c.quota.remaining == 5
    assert info.value.exit_code == 75 and type(info.value) is not BudgetExhausted


# ---------------------------------------------------------------- 5xx and transport failures


async def test_reads_back_off_exponentially_on_5xx() -> None:
    t = FakeTime()
    seq = iter([answer(500), answer(502), answer(503), answer(504), ok(["done"])])
    async with mock_client(
        lambda r: next(seq), t, retry=RetryPolicy(base_delay=1, max_delay=100)
    ) as c:
        reply = await c.get("Contacts")
    assert reply.data == ["done"]
    # full jitter: uniform(0, base * 2^n) from the client's seeded generator, in order
    rng, policy = random.Random(1), RetryPolicy(base_delay=1, max_delay=100)
    expected = [policy.backoff(n, rng) for n in range(1, 5)]
    backoffs = [s for s in t.sleeps if s not in (0.1,)]  # pacing slots are 0.1 s
    assert backoffs[:4] == pytest.approx(expected) and len(expected) == 4
    assert all(0 < d <= 2**n for n, d in enumerate(expected, start=1))
    assert c.stats.retries == 4 and c.stats.waited_backoff == pytest.approx(sum(expected))


async def test_reads_give_up_after_max_attempts_with_a_server_error() -> None:
    calls = []
    async with mock_client(
        lambda r: calls.append(r) or answer(500, "boom"), retry=RetryPolicy(max_attempts=3)
    ) as c:
        with pytest.raises(ServerError) as info:
            await c.get("Contacts")
    assert len(calls) == 3 and "boom" in str(info.value)


async def test_a_read_is_retried_after_a_dropped_connection() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            )
        return ok([{"CONTACT_ID": 1}])

    async with mock_client(handler) as c:
        reply = await c.get("Contacts")
    assert reply.data == [{"CONTACT_ID": 1}] and len(calls) == 2


@pytest.mark.parametrize(
    "failure",
    [httpx.RemoteProtocolError("dropped"), httpx.ReadTimeout("slow"), httpx.ReadError("reset")],
    ids=["dropped", "read-timeout", "read-error"],
)
async def test_a_write_with_a_lost_answer_is_outcome_unknown_and_sent_once(
    failure: Exception,
) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise failure

    async with mock_client(handler) as c:
        with pytest.raises(OutcomeUnknown):
            await c.create("Contacts", {"FIRST_NAME": "Ada"})
    assert len(calls) == 1


async def test_a_write_500_is_outcome_unknown_but_503_and_429_are_retried() -> None:
    seq = iter([answer(503), answer(429, "burst"), httpx.Response(201, json={"CONTACT_ID": 7})])
    async with mock_client(lambda r: next(seq)) as c:
        assert (await c.create("Contacts", {"FIRST_NAME": "A"}))["CONTACT_ID"] == 7
    calls = []
    async with mock_client(lambda r: calls.append(r) or answer(500)) as c:
        with pytest.raises(OutcomeUnknown):
            await c.create("Contacts", {"FIRST_NAME": "A"})
    assert len(calls) == 1


async def test_a_write_that_never_connected_is_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(201, json={"CONTACT_ID": 9})

    async with mock_client(handler) as c:
        assert (await c.create("Contacts", {"FIRST_NAME": "A"}))["CONTACT_ID"] == 9
    assert len(calls) == 3


async def test_transport_error_after_retries_on_reads() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("name resolution failed")

    async with mock_client(handler, retry=RetryPolicy(max_attempts=2)) as c:
        with pytest.raises(TransportError) as info:
            await c.get("Contacts")
    assert info.value.exit_code == 69
    assert info.value.hint == (  # it said "Check the network and the pod / API URL." only
        "Could not reach https://api.na1.insightly.com/v3.1/: check the network, --pod or "
        "--api-url."
    )


# ---------------------------------------------------------------- typed errors


@pytest.mark.parametrize(
    ("status", "message", "error", "exit_code"),
    [
        (401, "Authorization has been denied for this request.", AuthError, 77),
        (403, "User doesn't have access", ForbiddenError, 77),
        (404, "not found", NotFoundError, 1),
        (405, "method", NotFoundError, 1),
        (400, "The FIRST_NAME field is required.", ValidationError, 65),
        (400, 'If-Match header value "abc" is not valid.', ConflictError, 65),
        (412, "modified", ConflictError, 65),
        (409, "category deactivated", ApiError, 1),
    ],
)
async def test_every_status_maps_to_its_error(status, message, error, exit_code) -> None:
    async with mock_client(lambda r: answer(status, message)) as c:
        with pytest.raises(error) as info:
            await c.update("Contacts", {"CONTACT_ID": 1})
    assert type(info.value) is error
    assert info.value.exit_code == exit_code and info.value.status == status
    assert message in str(info.value) and "PUT Contacts" in str(info.value)


async def test_auth_error_says_where_the_key_is_found() -> None:
    async with mock_client(
        lambda r: answer(401, "Authorization has been denied for this request.")
    ) as c:
        with pytest.raises(AuthError) as info:
            await c.get("Users/Me")
    assert "User Settings → API" in (info.value.hint or "") and "pod" in (info.value.hint or "")


async def test_rate_limited_surfaces_after_the_attempts_are_spent() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer(429, "burst")

    async with mock_client(handler, retry=RetryPolicy(max_throttled=3)) as c:
        with pytest.raises(RateLimited):
            await c.get("Users/Me")
    assert len(calls) == 4  # the first try and 3 retries, then it surfaces
    assert c.stats.throttled == 4 and c.stats.retries == 3


async def test_a_non_array_list_answer_is_an_error_not_an_empty_page() -> None:
    async with mock_client(lambda r: httpx.Response(200, text="<html>gateway</html>")) as c:
        with pytest.raises(ApiError):
            async for _ in c.iter_pages("Contacts"):
                pass


# ---------------------------------------------------------------- paging


@pytest.mark.slow
async def test_iter_pages_fetches_every_page_in_order_concurrently(make_sandbox) -> None:
    sb: Sandbox = make_sandbox(generate={"Contacts": 2000}, latency_ms=20)
    client = InsightlyClient(
        load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/"),
        transport=httpx.ASGITransport(app=sb.app),
        rate=1000,
        max_in_flight=4,
    )
    async with client:
        pages = [p async for p in client.iter_pages("Contacts")]
    ids = [r["CONTACT_ID"] for p in pages for r in p.records]
    assert ids == sb.account.collections["Contacts"].ids
    assert [p.skip for p in pages] == [0, 495, 990, 1485, 1980]  # overlapping by 5
    assert [len(p.records) for p in pages] == [500, 495, 495, 495, 235]
    assert pages[0].total == 2220
    assert client.stats.sent == 5


async def test_iter_pages_sequential_without_total_stops_on_a_short_page() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        seen.append(skip)
        return ok([{"ID": i} for i in range(skip, min(skip + 500, 1003))])

    async with mock_client(handler) as c:
        pages = [p async for p in c.iter_pages("Things")]
    assert seen == [0, 495, 990]  # each page overlaps the one before by 5 records
    assert [len(p.records) for p in pages] == [500, 495, 8]


async def test_iter_pages_detects_a_server_ignoring_skip() -> None:
    async with mock_client(lambda r: ok([{"ID": i} for i in range(500)])) as c:
        with pytest.raises(ApiError, match="the same page for two offsets") as info:
            async for _ in c.iter_pages("Things"):
                pass
    assert info.value.exit_code == 69  # unpageable, as the other broken-paging cases


# ---------------------------------------------------------------- secrets


async def test_the_key_never_appears_in_logs_errors_or_reprs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    import base64

    encoded = base64.b64encode(f"{SECRET}:".encode()).decode()
    seq = iter(
        [answer(500, "boom"), answer(401, "Authorization has been denied for this request.")]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Basic {encoded}"  # it is sent…
        return next(seq)

    client = mock_client(handler)
    texts = [repr(client), repr(settings()), str(settings())]
    async with client:
        with pytest.raises(AuthError) as info:
            await client.get("Users/Me")
    texts += [str(info.value), repr(info.value), info.value.hint or ""]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    for text in texts:
        assert SECRET not in text and encoded not in text  # …and never shown
    assert caplog.records  # something was logged at all


async def test_after_quota_exhausted_no_further_request_is_sent() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer(429, "API daily request limit reached", remaining=0)

    async with mock_client(handler, max_in_flight=1) as c:
        results = await asyncio.gather(
            *(c.get("Users/Me") for _ in range(5)), return_exceptions=True
        )
    assert all(isinstance(r, QuotaExhausted) for r in results)
    assert len(calls) == 1


@pytest.mark.parametrize("as_json", [True, False], ids=["Message", "plain-text"])
async def test_a_server_echoing_the_authorization_header_never_puts_the_key_in_an_error(
    as_json: bool,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echo = (
            f"Bad request. Headers: Authorization: {request.headers['Authorization']}; key {SECRET}"
        )
        if as_json:
            return answer(400, echo)
        return httpx.Response(400, text=echo, headers={"X-RateLimit-Remaining": "9"})

    async with mock_client(handler) as client:
        with pytest.raises(ValidationError) as info:
            await client.create("Contacts", {"FIRST_NAME": "a"})
    assert str(info.value) == (
        "POST Contacts, HTTP 400: Bad request. Headers: Authorization: Basic ***; key ***"
    )


async def test_a_key_echoed_in_json_escapes_is_redacted_too() -> None:
    """A body without `Message` was shown as its raw text, where `\\u004b…` (as .NET's JSON
    writes `+`) hid the key from the redaction."""

    def handler(request: httpx.Request) -> httpx.Response:
        escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET)
        return httpx.Response(400, content=f'["{escaped}"]'.encode(), headers={"X-A": "1"})

    async with mock_client(handler) as client:
        with pytest.raises(ValidationError) as info:
            await client.create("Contacts", {"FIRST_NAME": "a"})
    assert SECRET not in str(info.value)
    assert str(info.value) == 'POST Contacts, HTTP 400: ["***"]'


# ---------------------------------------------------------------- hostile answers


async def test_a_page_larger_than_asked_for_is_a_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok([{"CONTACT_ID": i} for i in range(501)], **{"X-Total-Count": "501"})

    async with mock_client(handler) as client:
        with pytest.raises(ApiError) as info:
            [p async for p in client.iter_pages("Contacts")]
    assert str(info.value) == "Contacts answered 501 records to top=500: not the API's paging"


async def test_a_count_header_sent_twice_counts_once_when_the_copies_agree() -> None:
    """A proxy that repeats a header makes httpx join the copies ("503, 503")."""

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        total = "503, 503" if request.url.params.get("count_total") else "503, 7"
        records = [{"CONTACT_ID": i} for i in range(skip, min(skip + 500, 503))]
        return httpx.Response(
            200,
            json=records,
            headers=[
                ("X-RateLimit-Limit", "1000"),
                ("X-RateLimit-Remaining", "990"),
                ("X-RateLimit-Remaining", "990"),
                *(("X-Total-Count", t.strip()) for t in total.split(",")),
            ],
        )

    async with mock_client(handler) as client:
        pages = [p async for p in client.iter_pages("Contacts")]
        assert pages[0].total == 503
        assert client.quota.remaining == 990
        disagreeing = await client.get("Contacts", params={"skip": 0, "top": 1})
    assert disagreeing.total is None  # 503 and 7: neither is believed


async def test_a_huge_total_count_is_only_a_hint() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        seen.append(skip)
        records = [{"CONTACT_ID": i} for i in range(skip, min(skip + 500, 503))]
        return ok(records, **{"X-Total-Count": str(10**15)})

    async with mock_client(handler, max_in_flight=2) as client:
        pages = [p async for p in client.iter_pages("Contacts")]
    assert [len(p.records) for p in pages] == [500, 3]
    assert sorted(seen)[:2] == [0, 495] and len(seen) <= 4  # the window ran ahead, no further


async def test_an_answer_dripping_slowly_hits_the_deadline() -> None:
    class Drip(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[override]
            for _ in range(100):
                await asyncio.sleep(0.05)
                yield b" "

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Drip())

    client = InsightlyClient(
        settings(),
        transport=httpx.MockTransport(handler),
        deadline=0.3,
        retry=RetryPolicy(max_attempts=1),
    )
    async with client:
        with pytest.raises(TransportError) as info:
            await client.get("Contacts")
    assert str(info.value) == "GET Contacts: ReadTimeout: no complete answer within 0.3s"


async def test_an_oversized_answer_is_refused_without_reading_it_all() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" + b" " * 5_000 + b"]")

    client = InsightlyClient(settings(), transport=httpx.MockTransport(handler), max_body=1_000)
    async with client:
        with pytest.raises(ApiError) as info:
            await client.get("Contacts")
    assert (
        str(info.value) == "GET Contacts, HTTP 200: the answer is larger than 1,000 bytes; refused"
    )


async def test_a_huge_retry_after_is_clamped_capped_in_total_and_announced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = FakeTime()
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return answer(429, "slow down", **{"Retry-After": "999999"})

    async with mock_client(handler, t) as client:
        with pytest.raises(RateLimited):
            await client.get("Contacts")
    # clamped to 120 s a wait; the second would pass the 180 s total: given up after 2 waits
    assert len(calls) == 2
    assert t.now - 1000.0 == pytest.approx(120.0, abs=1.0)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "GET Contacts: the server asks to wait 120s (Retry-After: 999999.0); waiting"
    ]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            httpx.Response(302, headers={"Location": "https://login.example/sso"}),
            "POST Contacts, HTTP 302: the server redirected to https://login.example/sso: the API "
            "is not at this URL",
        ),
        (
            httpx.Response(200, json=["not", "a", "record"]),
            "POST Contacts, HTTP 200: the answer to a write is not a record (a JSON object) but list",
        ),
    ],
    ids=["redirect", "list"],
)
async def test_a_write_answered_with_a_redirect_or_no_record_is_a_clear_error(
    response: httpx.Response, message: str
) -> None:
    async with mock_client(lambda r: response) as client:
        with pytest.raises(ApiError) as info:
            await client.create("Contacts", {"FIRST_NAME": "a"})
    assert str(info.value) == message


async def test_a_list_holding_something_other_than_records_is_a_protocol_error() -> None:
    async with mock_client(lambda r: ok(["a string", 7])) as client:
        with pytest.raises(ApiError) as info:
            [p async for p in client.iter_pages("Contacts")]
    assert str(info.value) == "Contacts answered a list holding something other than records"


async def test_a_short_page_before_the_count_is_not_the_end() -> None:
    """A server that leaves records out of a page (ones the user may not see) answers a short
    page in the middle: ending there lost 2,000 records, later recorded as deleted."""

    def handler(request: httpx.Request) -> httpx.Response:
        skip, top = int(request.url.params["skip"]), int(request.url.params["top"])
        ids = [i for i in range(skip, min(skip + top, 3000)) if i != 700]  # 700 is hidden
        return ok([{"CONTACT_ID": i} for i in ids], **{"X-Total-Count": "3000"})

    async with mock_client(handler, max_in_flight=4) as client:
        records = [r async for p in client.iter_pages("Contacts") for r in p.records]
        notices = client.stats.notices
    assert len(records) == len({r["CONTACT_ID"] for r in records}) == 2999
    assert notices == [
        "Contacts: the page at 495 held 499 of the 500 records asked for, though 3,000 were "
        "counted; paging went on to the count"
    ]


async def test_a_later_page_beyond_the_size_cap_is_read_again_in_smaller_pages() -> None:
    """The first page is small, the records after it large: a page of 500 of them passes the
    cap, and that range is asked again in quarters until it fits."""

    def handler(request: httpx.Request) -> httpx.Response:
        skip, top = int(request.url.params["skip"]), int(request.url.params["top"])
        body = [
            {"CONTACT_ID": i, "BACKGROUND": "" if i < 500 else "x" * 1_000}
            for i in range(skip, min(skip + top, 1500))
        ]
        return ok(body, **{"X-Total-Count": "1500"})

    async with mock_client(handler, max_body=100_000, max_in_flight=2) as client:
        records = [r async for p in client.iter_pages("Contacts") for r in p.records]
        notices = client.stats.notices
    assert [r["CONTACT_ID"] for r in records] == list(range(1500))
    assert notices[:2] == [
        "Contacts: a page of 500 records was larger than 0.1 MB; asked again for 125",
        "Contacts: a page of 125 records was larger than 0.1 MB; asked again for 31",
    ]


async def test_a_count_above_the_records_read_reads_the_end_again() -> None:
    """Three records are made while the last page is served (its count has them, its page
    not): the end is read again, once, and they are listed too."""
    ids = list(range(1, 1001))
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        skip, top = int(request.url.params["skip"]), int(request.url.params["top"])
        seen.append(skip)
        page = ids[skip : skip + top]
        if skip == 990 and len(ids) == 1000:
            ids.extend([1001, 1002, 1003])  # made meanwhile, after the page was cut
        return ok([{"CONTACT_ID": i} for i in page], **{"X-Total-Count": str(len(ids))})

    async with mock_client(handler, max_in_flight=1) as client:
        records = [r["CONTACT_ID"] async for p in client.iter_pages("Contacts") for r in p.records]
    assert records == list(range(1, 1004))
    assert seen == [0, 495, 990, 508]  # the end again: from the count less a page


async def test_a_record_listed_twice_in_one_page_is_not_trusted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok([{"CONTACT_ID": 1}, {"CONTACT_ID": 2}, {"CONTACT_ID": 1}])

    async with mock_client(handler) as client:
        with pytest.raises(UnstableOrder, match="lists record 1 more than once"):
            async for _ in client.iter_pages("Contacts"):
                pass


@pytest.mark.parametrize(
    ("size", "at", "gone"),
    [(3000, 2970, 800), (1500, 1485, 14), (1500, 1485, 15), (1500, 1485, 16)],
)
async def test_deletions_below_the_read_position_lose_no_record_after_it(
    size: int, at: int, gone: int
) -> None:
    """Records deleted just as the page at `at` is asked for: the list is now shorter than
    where it was read (800 of 3,000), or ends exactly there (15 of 1,500). That page comes
    back empty or short, the count says where the end is now, and the end is read again:
    every record still there is listed."""
    ids = list(range(1, size + 1))
    deleted = False

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal deleted
        skip, top = int(request.url.params["skip"]), int(request.url.params["top"])
        if skip >= at and not deleted:
            deleted = True
            del ids[:gone]
        page = ids[skip : skip + top]
        return ok([{"CONTACT_ID": i} for i in page], **{"X-Total-Count": str(len(ids))})

    async with mock_client(handler, max_in_flight=1) as client:
        records = {r["CONTACT_ID"] async for p in client.iter_pages("Contacts") for r in p.records}
    assert set(ids) <= records


def test_the_overlap_widens_after_pages_that_do_not_join_and_narrows_after_calm() -> None:
    from insightly_etl.api.client import _Seams

    seams = _Seams(InsightlyClient(settings()), "Contacts", "ID")
    assert seams.stride(500) == 495
    seams.start([{"ID": i} for i in range(500)])
    assert seams.join([{"ID": i} for i in range(900, 1000)], 495) is None  # no join
    assert seams.join([{"ID": i} for i in range(2000, 2100)], 900) is None
    assert seams.stride(500) == 480  # 5 doubled twice
    for n in range(10):
        assert seams.join([{"ID": 499}, {"ID": 3000 + n}], 1000 + n) == [{"ID": 3000 + n}]
    assert seams.stride(500) == 490  # halved after ten pages that joined


def test_pages_in_flight_too_large_together_shrink_the_size_once() -> None:
    from types import SimpleNamespace

    from insightly_etl.api.client import _Sizer

    client = SimpleNamespace(max_body=64 << 20, stats=SimpleNamespace(notices=[]))
    sizer = _Sizer(client, "Contacts", 500)  # type: ignore[arg-type]
    sizer.too_large(500)
    sizer.too_large(500)  # a second page of 500, asked for before the first answered
    assert (sizer.size, sizer.top) == (125, 250)
    assert client.stats.notices == [
        "Contacts: a page of 500 records was larger than 67.1 MB; asked again for 125"
    ]
    sizer.too_large(125)
    assert (sizer.size, sizer.top) == (31, 62)


async def test_a_read_in_flight_is_dropped_when_the_run_is_told_to_stop(make_sandbox) -> None:
    """A stalled answer held a stop up to its deadline (2 minutes); a read changes nothing."""
    from insightly_etl.errors import Halted
    from tests.conftest import sandbox_client

    sb = make_sandbox()
    arrived = asyncio.Event()

    async def stalls(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v3.1/Contacts":
            arrived.set()
            await asyncio.sleep(600)
        await sb.app(scope, receive, send)

    stop = asyncio.Event()
    async with sandbox_client(sb, transport=httpx.ASGITransport(app=stalls)) as client:
        client.halt_on(stop)
        assert (await client.get("Instance")).status == 200  # answered reads are as before
        reading = asyncio.ensure_future(client.get("Contacts"))
        await arrived.wait()
        stop.set()
        with pytest.raises(Halted, match="a read in flight was dropped"):
            await asyncio.wait_for(reading, timeout=60)  # far below the stall


async def test_hostile_headers_are_no_values_not_internal_errors() -> None:
    """A Date of year 9999 west of UTC, counts of 5,000 digits and a Latin-1 header value
    each ended a run with "internal error" (exit 70); the last one failed every request."""

    def handler(request: httpx.Request) -> httpx.Response:
        digits = "9" * 5000
        return httpx.Response(
            200,
            json=[{"CONTACT_ID": 1}],
            headers=[
                (b"Date", b"Fri, 31 Dec 9999 23:59:59 -0100"),
                (b"X-Total-Count", digits.encode()),
                (b"X-RateLimit-Limit", digits.encode()),
                (b"X-RateLimit-Remaining", digits.encode()),
                (b"X-Server-Note", "café".encode("latin-1")),
            ],
        )

    async with mock_client(handler) as client:
        reply = await client.get("Contacts", {"top": 500})
        assert reply.data == [{"CONTACT_ID": 1}]
        assert reply.total is None
        assert reply.headers["X-Server-Note"] == "café"
        assert (client.quota.limit, client.quota.remaining) == (None, None)


async def test_json_nested_past_the_stack_is_an_answer_that_is_not_json() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000)

    async with mock_client(handler) as client:
        with pytest.raises(ApiError, match=r"the answer is not JSON: '\[\[\[\["):
            await client.get("Contacts")


async def test_a_count_of_requests_left_overtaken_by_a_later_one_is_not_taken_for_more() -> None:
    """Answers overtake one another: a page answered after the small request sent beside it
    said 40 left where the small one, counted later, said 39; taking the last to arrive let
    an export start an object the day could not finish. A count higher by more than the
    requests in flight at once is requests freed up (a new day), and is taken."""
    said = iter([39, 40, 60])
    client = mock_client(lambda request: ok(remaining=next(said)))
    async with client:
        seen = []
        for _ in range(3):
            await client.get("Users/Me")
            seen.append(client.quota.remaining)
    assert seen == [39, 39, 60]  # one in flight each time: a count one higher is an older one


def test_the_pages_left_count_by_the_size_the_first_page_was_asked_at() -> None:
    """A first page made smaller for its size (125 of a 64 MB answer's 500) counted as 0 more
    pages: an object a run could not finish was started all the same."""
    from insightly_etl.api.client import Page

    def page(served: int, total: int | None, top: int = 500) -> Page:
        return Page([{}] * served, 0, total, top)

    assert InsightlyClient.pages_after(page(500, 5220)) == 10  # at 495, 990 … 4,950
    assert InsightlyClient.pages_after(page(125, 5220, top=125)) == 42  # 124 a page
    assert InsightlyClient.pages_after(page(220, 220)) == 0  # short: the whole list
    assert InsightlyClient.pages_after(page(500, 500)) == 1  # full: one more, found empty
    assert InsightlyClient.pages_after(page(500, 991)) == 2  # at 495 and 990
    assert InsightlyClient.pages_after(page(500, None)) == 0  # no count: nothing to judge by


async def test_a_day_no_answer_gave_is_no_bound_on_what_a_later_run_has() -> None:
    """A gateway that drops X-RateLimit-Limit: the 3 left now were taken for the day's whole
    allowance, and an export said no run could ever read an object (exit 2, not 75)."""
    client = mock_client(
        lambda request: httpx.Response(200, json=[], headers={"X-RateLimit-Remaining": "3"}),
        max_requests=None,
    )
    async with client:
        await client.get("Users/Me")
        left, most = client.requests_left() or (None, None)
    assert left == 3 and most is not None and most > 10**12
