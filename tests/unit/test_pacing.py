"""The limiter learns the rate an account really allows, and starts from it next time."""

from __future__ import annotations

import pytest

from insightly_etl.api.pacing import PROBE_AFTER, RateLimiter


def limiter() -> RateLimiter:
    now = {"t": 100.0}

    async def sleep(seconds: float) -> None:
        now["t"] += seconds

    return RateLimiter(10, clock=lambda: now["t"], sleep=sleep)


def test_a_429_teaches_the_rate_just_under_it_and_the_climb_back_stops_there() -> None:
    lim = limiter()
    lim.on_throttled()
    assert (lim.learned, lim.rate) == (pytest.approx(9.0), 5.0)
    for _ in range(100):
        lim.on_success()
    assert lim.rate == pytest.approx(9.0)  # not back to 10, where it drew the 429


def test_a_long_calm_probes_five_percent_higher_never_above_the_ceiling() -> None:
    lim = limiter()
    lim.start_from(8.0)
    assert (lim.rate, lim.learned) == (8.0, 8.0)
    for _ in range(PROBE_AFTER * 4):
        lim.on_success()
    assert lim.learned == pytest.approx(min(10.0, 8.0 * 1.05**4)) and lim.rate <= 10.0


def test_start_from_ignores_nothing_or_more_than_the_ceiling() -> None:
    lim = limiter()
    lim.start_from(None)
    lim.start_from(25.0)
    assert (lim.rate, lim.learned) == (10.0, None)


def test_with_enough_history_the_estimate_is_what_the_server_accepted() -> None:
    now = {"t": 100.0}
    lim = RateLimiter(10, clock=lambda: now["t"])
    for _ in range(20):  # the server took 8 a second
        lim.on_success()
        now["t"] += 0.125
    lim.on_throttled()
    assert lim.learned == pytest.approx(0.95 * 8)  # 16 successes in the last 2 s
