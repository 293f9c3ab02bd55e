"""The limiters learn the rate and the concurrency an account really allows, and start from them
next time. Virtual time: every number is exact."""

from __future__ import annotations

import asyncio

import pytest

from insightly_etl.api.pacing import PROBE_AFTER, InFlight, RateLimiter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def limiter(burst: int = 1) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(10, burst=burst, clock=clock, sleep=clock.sleep), clock


async def test_a_burst_starts_at_once_then_slots_are_one_tenth_apart() -> None:
    lim, clock = limiter(burst=8)
    waits = [await lim.acquire() for _ in range(10)]
    assert waits == [0.0] * 8 + [pytest.approx(0.1), pytest.approx(0.1)]
    clock.t += 5.0  # idle: the bucket is full again
    assert [await lim.acquire() for _ in range(8)] == [0.0] * 8


async def test_a_429_ends_the_burst_and_halves_the_rate() -> None:
    lim, clock = limiter(burst=8)
    lim.on_throttled(sent_at=clock.t)
    assert (lim.rate, lim.burst, lim.learned) == (5.0, 1, None)
    clock.t += 10.0
    waits = [await lim.acquire() for _ in range(3)]
    assert waits == [0.0, pytest.approx(0.2), pytest.approx(0.2)]


def test_429s_for_requests_sent_before_the_cut_are_the_same_storm() -> None:
    lim, clock = limiter()
    sent = clock.t
    clock.t += 0.3
    lim.on_throttled(sent_at=sent)
    lim.on_throttled(sent_at=sent)
    lim.on_throttled(sent_at=sent + 0.01)
    assert (lim.rate, lim.learned) == (5.0, None)


def test_the_next_429_teaches_what_the_server_took_between_the_two() -> None:
    lim, clock = limiter()
    lim.on_throttled(sent_at=clock.t)  # the first: 10/s was too much
    for i in range(60):  # climbing back by 1% of the ceiling an answer, 6 answers a second
        clock.t += 1 / 6
        lim.on_served()  # every answer but a 429 was taken, a 500 too (1 in 10 here)
        if i % 10:
            lim.on_success()
    assert lim.rate == pytest.approx(10.0)  # no 429 on the way: all the way back
    lim.on_throttled(sent_at=clock.t)  # 60 taken in the 10 s since the first
    assert lim.learned == pytest.approx(0.98 * 6)
    assert lim.rate == lim.learned
    for _ in range(100):
        lim.on_success()
    assert lim.rate == lim.learned  # stays just under what the server took


def test_429s_too_close_to_measure_only_slow_down_and_teach_nothing() -> None:
    lim, clock = limiter()
    for expected in (5.0, 4.5, 4.05):
        clock.t += 0.2
        lim.on_throttled(sent_at=clock.t)
        assert lim.rate == pytest.approx(expected)
    assert lim.learned is None


def test_a_long_calm_probes_five_percent_higher_never_above_the_ceiling() -> None:
    lim, _ = limiter(burst=8)
    lim.start_from(8.0)
    assert (lim.rate, lim.learned, lim.burst) == (8.0, 8.0, 1)
    for _ in range(PROBE_AFTER * 4):
        lim.on_success()
    assert lim.learned == pytest.approx(min(10.0, 8.0 * 1.05**4)) and lim.rate <= 10.0


def test_a_probe_that_draws_a_429_goes_back_to_the_rate_that_held() -> None:
    # at 5/s, a probe to 5.25/s found the limit: what the server took since the last 429
    # (it was sent at 5/s, below the limit, most of that time) does not lower the rate
    lim, clock = limiter()
    lim.start_from(5.0)
    for _ in range(3):  # probe after probe: never lower than the rate known to hold
        for _ in range(PROBE_AFTER):
            clock.t += 1 / 5
            lim.on_served()
            lim.on_success()
        assert lim.learned == pytest.approx(5.25)
        lim.on_throttled(sent_at=clock.t)
        assert (lim.learned, lim.rate) == (5.0, 5.0)
    # a 429 at the rate that held is measured as before: 50 taken in 10 s
    for _ in range(50):
        clock.t += 1 / 5
        lim.on_served()
        lim.on_success()
    lim.on_throttled(sent_at=clock.t)
    assert lim.learned == pytest.approx(0.98 * 5.0)


def test_start_from_ignores_nothing_or_more_than_the_ceiling() -> None:
    lim, _ = limiter(burst=8)
    lim.start_from(None)
    lim.start_from(25.0)
    assert (lim.rate, lim.learned, lim.burst) == (10.0, None, 8)


# ---------------------------------------------------------------- in flight


async def hold(gate: InFlight, started: list[int], release: asyncio.Event, i: int) -> None:
    async with gate:
        started.append(i)
        await release.wait()


async def test_four_in_flight_at_first_the_rest_wait_for_a_place() -> None:
    gate = InFlight(8)
    started: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, started, release, i)) for i in range(6)]
    await asyncio.sleep(0)
    assert (started, gate.busy) == ([0, 1, 2, 3], 4)
    release.set()
    await asyncio.gather(*tasks)
    assert (started, gate.busy) == ([0, 1, 2, 3, 4, 5], 0)


async def test_successes_while_requests_queue_add_a_place_per_round_up_to_the_cap() -> None:
    gate = InFlight(6)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, [], release, i)) for i in range(10)]
    await asyncio.sleep(0)
    for _ in range(4):  # a round of 4 answers while 6 wait: one more place
        gate.on_success()
    await asyncio.sleep(0)
    assert (gate.limit, gate.busy) == (5, 5)
    for _ in range(50):
        gate.on_success()
    assert gate.limit == 6  # never above --max-in-flight
    release.set()
    await asyncio.gather(*tasks)
    gate.on_success()  # nobody waits: no reason to grow
    assert gate.limit == 6


def test_a_429_with_every_place_taken_gives_one_back_never_below_two() -> None:
    gate = InFlight(8)
    gate.on_throttled(10.0, busy=4)
    assert (gate.limit, gate.learned) == (3, 3)
    gate.on_throttled(10.5, busy=3)  # the same storm
    assert gate.limit == 3
    gate.on_throttled(12.0, busy=3)
    gate.on_throttled(14.0, busy=2)
    assert (gate.limit, gate.learned) == (2, 2)


async def test_a_429_with_places_free_keeps_the_limit_but_slows_the_growth() -> None:
    gate = InFlight(8)
    gate.on_throttled(10.0, busy=1)
    assert (gate.limit, gate.learned) == (4, None)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, [], release, i)) for i in range(10)]
    await asyncio.sleep(0)
    for _ in range(PROBE_AFTER - 1):
        gate.on_success()
    assert gate.limit == 4
    gate.on_success()
    assert gate.limit == 5  # after a long calm
    release.set()
    await asyncio.gather(*tasks)


async def test_a_cancelled_waiter_gives_back_nothing_it_did_not_take() -> None:
    gate = InFlight(1, start=1)
    release = asyncio.Event()
    first = asyncio.create_task(hold(gate, [], release, 0))
    waiting = asyncio.create_task(hold(gate, [], release, 1))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    release.set()
    await first
    assert gate.busy == 0
    async with gate:
        assert gate.busy == 1
