"""Pacing: one limiter per process keeps every request under the per-second ceiling.

Requests get evenly spaced start slots (1/rate apart), so a burst never forms and the server's
bucket never empties. On a burst 429 the rate halves (at most once per second, since the
requests already in flight answer 429 together) and then climbs back additively with each
success — but only to just under the rate that drew the 429: that is what the account really
allows (one tap's authors measured 5/s where the documentation says 10), `learned`. Long runs
of success probe a little higher, so a limit that was lifted is found again. A caller may
start from what an earlier run learned (`start_from`). A Retry-After pauses every request until
it has passed. Clock and sleep are injected so tests are exact and fast.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
ACCEPTED_WINDOW = 2.0  # seconds of successes that estimate what the server accepts
PROBE_AFTER = 500  # successes at the learned rate before probing 5% higher
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
        self.learned: float | None = None  # highest rate known to draw no 429
        self._streak = 0  # successes since the last 429 or probe
        self._successes: deque[float] = deque(maxlen=1_000)  # when recent answers succeeded

    async def acquire(self) -> float:
        """Wait for this request's start slot; return how long it waited."""
        now = self.clock()
        start = max(now, self._next_slot, self._paused_until)
        self._next_slot = start + 1.0 / self.rate  # claimed before awaiting: no lock needed
        wait = start - now
        if wait > 0:
            await self.sleep(wait)
        return wait

    def start_from(self, learned: float | None) -> None:
        """Begin at what an earlier run learned about this account (never above the ceiling)."""
        if learned and 0 < learned < self.ceiling:
            self.learned = max(self.min_rate, learned)
            self.rate = self.learned

    def accepted_rate(self, now: float) -> float | None:
        """Successes per second over the last ACCEPTED_WINDOW seconds: what the server took."""
        while self._successes and self._successes[0] < now - ACCEPTED_WINDOW:
            self._successes.popleft()
        if len(self._successes) < 10:  # too few to tell a limit from a passing storm
            return None
        span = max(now - self._successes[0], 1.0)
        return len(self._successes) / span

    def on_success(self) -> None:
        self._successes.append(self.clock())
        cap = self.learned or self.ceiling
        self._streak += 1
        if self.learned is not None and self._streak >= PROBE_AFTER and cap < self.ceiling:
            # a long calm: the limit may have been lifted; look 5% higher
            self.learned = cap = min(self.ceiling, cap * 1.05)
            self._streak = 0
        if self.rate < cap:
            # back to the cap after ~20 good answers (about two seconds at 10/s)
            self.rate = min(cap, self.rate + self.ceiling / 20)

    def on_throttled(self, retry_after: float | None = None) -> None:
        now = self.clock()
        self._streak = 0
        if now - self._last_cut >= 1.0:
            if self.learned is None or self.rate >= 0.75 * self.learned:
                # throttled near the top: the account allows less than this. What the server
                # accepted over the last seconds is the best estimate of its limit; just under
                # it is remembered (a 429 while still climbing back is the same storm)
                accepted = self.accepted_rate(now)
                estimate = 0.95 * accepted if accepted else 0.9 * self.rate
                self.learned = max(
                    self.min_rate, min(self.learned or self.rate, estimate, 0.9 * self.rate)
                )
            self.rate = max(self.min_rate, self.rate / 2)
            self._last_cut = now
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._paused_until = max(self._paused_until, now + pause)
        self._next_slot = max(self._next_slot, self._paused_until)
