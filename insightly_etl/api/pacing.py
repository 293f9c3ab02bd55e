"""Pacing: one limiter per process keeps every request under the per-second ceiling.

Requests get evenly spaced start slots (1/rate apart), so a burst never forms and the server's
bucket never empties. On a burst 429 the rate halves (at most once per second, since the
requests already in flight answer 429 together) and then climbs back additively with each
success; a Retry-After pauses every request until it has passed. Clock and sleep are injected
so tests are exact and fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        min_rate: float = 0.5,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = rate
        self.rate = rate
        self.min_rate = min(min_rate, rate)
        self.clock = clock
        self.sleep = sleep
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_cut = float("-inf")

    async def acquire(self) -> float:
        """Wait for this request's start slot; return how long it waited."""
        now = self.clock()
        start = max(now, self._next_slot, self._paused_until)
        self._next_slot = start + 1.0 / self.rate  # claimed before awaiting: no lock needed
        wait = start - now
        if wait > 0:
            await self.sleep(wait)
        return wait

    def on_success(self) -> None:
        if self.rate < self.ceiling:
            # back to the ceiling after ~20 good answers (about two seconds at 10/s)
            self.rate = min(self.ceiling, self.rate + self.ceiling / 20)

    def on_throttled(self, retry_after: float | None = None) -> None:
        now = self.clock()
        if now - self._last_cut >= 1.0:
            self.rate = max(self.min_rate, self.rate / 2)
            self._last_cut = now
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._paused_until = max(self._paused_until, now + pause)
        self._next_slot = max(self._next_slot, self._paused_until)
