"""Pacing: how fast requests leave (`RateLimiter`) and how many may be in flight (`InFlight`).

The documented limit is 10 requests/second; one tap's authors measured 429s above ~5/s and
above 4 in flight on the real API. So both limits are learned, per account, by what the server
answers, and a caller may start from what an earlier run learned (`start_from`).

Rate: start slots are 1/rate apart, after an initial burst of `burst` requests that a token
bucket allows (an unused allowance is time lost). On the first 429 the burst ends, the rate
halves and then climbs back slowly. Each later 429 for a request sent after the last change
(those sent before it are the same storm) found the server's bucket empty, as the previous one
did: what the server took between the two is its rate, and just under it is `learned`, where
the rate stays. Long runs of success probe 5% higher, so a limit that was lifted is found
again; a probe that draws a 429 goes back to the rate that held. Every answer but a 429
counts as taken by the server (an error answer used its allowance too). A Retry-After pauses every request until it has passed.

In flight: start at 4 (what the tap found safe), one more per round of successes while
requests queue for a place (high latency needs more in flight for the same rate), one fewer on a
429 storm that came with every place taken; once a 429 has been seen, only a long calm tries one
more. Clock and sleep are injected so tests are exact and fast.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
# seconds of successes that estimate what the server accepts: long enough that a server of
# 2/s shows its rate in it (2 s held too few answers to tell, and nothing was learned)
ACCEPTED_WINDOW = 5.0
PROBE_AFTER = 500  # successes at the learned rate before probing 5% higher
START_IN_FLIGHT = 4  # what the real API was measured to take (reference, tap-insightly)
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        min_rate: float = 0.5,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = rate
        self.rate = rate
        self.burst = max(1, burst)
        self.min_rate = min(min_rate, rate)
        self.clock = clock
        self.sleep = sleep
        self._next_slot = float("-inf")  # the bucket starts full
        self._paused_until = 0.0
        self._last_cut = float("-inf")
        self._last_throttled = float("-inf")
        self._since_throttled = 0  # successes since the last 429
        self.learned: float | None = None  # highest rate known to draw no 429
        self._held: float | None = None  # while probing above `learned`: the rate that held
        self._climbing = False  # below the rate that drew a 429, on the way back up
        self._streak = 0  # successes since the last 429 or probe
        self._successes: deque[float] = deque(maxlen=1_000)  # when recent answers succeeded

    async def acquire(self) -> float:
        """Wait for this request's start slot; return how long it waited."""
        now = self.clock()
        allowance = (self.burst - 1) / self.rate  # how far ahead of its slot a burst may run
        start = max(now, self._next_slot - allowance, self._paused_until)
        # claimed before awaiting: no lock needed
        self._next_slot = max(self._next_slot, start) + 1.0 / self.rate
        wait = start - now
        if wait > 0:
            await self.sleep(wait)
        return wait

    def start_from(self, learned: float | None) -> None:
        """Begin at what an earlier run learned about this account (never above the ceiling):
        at that rate, without the burst that drew its 429s."""
        if learned and 0 < learned < self.ceiling:
            self.learned = max(self.min_rate, learned)
            self.rate = self.learned
            self.burst = 1

    def accepted_rate(self, now: float) -> float | None:
        """Successes per second over the last ACCEPTED_WINDOW seconds: what the server took."""
        while self._successes and self._successes[0] < now - ACCEPTED_WINDOW:
            self._successes.popleft()
        span = now - self._successes[0] if self._successes else 0.0
        if len(self._successes) < 5 or span < 2.0:  # too few to tell a limit from a storm
            return None
        return len(self._successes) / span

    def on_served(self) -> None:
        """An answer other than 429: the server took the request out of its allowance (an
        error answer too), so it counts in what the server is measured to accept."""
        self._successes.append(self.clock())
        self._since_throttled += 1

    def on_success(self) -> None:
        cap = self.learned or self.ceiling
        self._streak += 1
        if self.learned is not None and self._streak >= PROBE_AFTER and cap < self.ceiling:
            # a long calm: the limit may have been lifted; look 5% higher
            self._held = self._held or cap
            self.learned = cap = min(self.ceiling, cap * 1.05)
            self._streak = 0
        if self.rate < cap:
            # after a first 429, slowly (+1% of the ceiling an answer): the next 429 comes one
            # small step past the limit; after a known limit's storm, back in ~20 answers
            step = self.ceiling / (100 if self._climbing else 20)
            self.rate = min(cap, self.rate + step)

    def on_throttled(
        self, retry_after: float | None = None, *, sent_at: float | None = None
    ) -> None:
        """A 429 answered a request sent at `sent_at` (the clock's time; None: unknown)."""
        now = self.clock()
        self._streak = 0
        self.burst = 1  # the server's bucket is smaller than ours: no more bursts
        if (sent_at if sent_at is not None else now - 1.0) < self._last_cut:
            pass  # sent before the last change: the same storm, already answered
        elif self._held is not None and self.rate > self._held:
            # a probe above the rate that held went past the limit: back to that rate. Not
            # measured: the time since the last 429 was spent below the limit, and what the
            # server took in it understates the limit (each probe would lower it a little)
            self.learned = self.rate = self._held
            self._held = None
            self._last_cut = now
        elif self.learned is None and not self._climbing:
            # the first 429 at a rate not known to be too high: halve, then find the limit on
            # the way back up (a burst at the start makes the accepted rate overstate it)
            self.rate = max(self.min_rate, self.rate / 2)
            self._climbing = True
            self._last_cut = now
        else:
            # one step past the limit while climbing, or at the limit learned. Both 429s found
            # the server's bucket empty, so what it took between them is its rate; just under
            # it is learned. Too little between them to measure: only slow down 10%
            since = now - self._last_throttled
            measured = (
                self._since_throttled / since
                if since >= 1.0 and self._since_throttled >= 5
                else self.accepted_rate(now)
            )
            if measured:
                self.learned = self.rate = max(self.min_rate, 0.98 * min(measured, self.rate))
                self._held = None
                self._climbing = False
            else:
                self.rate = max(self.min_rate, 0.9 * self.rate)
                self._climbing = True
            self._last_cut = now
        self._last_throttled, self._since_throttled = now, 0
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._paused_until = max(self._paused_until, now + pause)
        self._next_slot = max(self._next_slot, self._paused_until)


class InFlight:
    """How many requests may be waiting for an answer at once; `async with gate:` holds one."""

    def __init__(self, ceiling: int, *, start: int = START_IN_FLIGHT) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = max(1, min(start, self.ceiling))
        self.busy = 0
        self.learned: int | None = None  # set by a 429 with every place taken
        self._throttled = False  # a 429 was seen: grow only after a long calm
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._credit = 0  # successes while requests queued, since the last change
        self._last_cut = float("-inf")

    def start_from(self, learned: int | None) -> None:
        if learned and 0 < learned < self.ceiling:
            self.learned = self.limit = int(learned)
            self._throttled = True

    async def __aenter__(self) -> None:
        if self.busy < self.limit and not self._waiters:
            self.busy += 1
            return
        place = asyncio.get_running_loop().create_future()
        self._waiters.append(place)
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self._release()  # granted, then cancelled before it could use it
            elif place in self._waiters:
                self._waiters.remove(place)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self.busy -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.busy < self.limit:
            place = self._waiters.popleft()
            if not place.done():
                self.busy += 1
                place.set_result(None)

    def on_success(self) -> None:
        if not self._waiters or self.limit >= self.ceiling:
            return
        self._credit += 1
        if self._credit >= (PROBE_AFTER if self._throttled else self.limit):
            self.limit += 1
            self._credit = 0
            self._wake()

    def on_throttled(self, now: float, busy: int) -> None:
        """A 429 came while `busy` requests (this one included) were in flight."""
        self._credit = 0
        if now - self._last_cut >= 1.0:  # one storm, one step
            if busy >= self.limit > 2:
                # the gate was full: too many in flight may be the reason (two never are: the
                # answer to a 429 at a low rate is a lower rate, not one request at a time)
                self.limit -= 1
                self.learned = self.limit
            self._throttled = True  # either way, more is no longer tried lightly
            self._last_cut = now
