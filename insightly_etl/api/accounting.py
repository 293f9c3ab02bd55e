"""What the client has spent and what the account has left: for budgets and end-of-run summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

ROLLING_WINDOW = timedelta(hours=24)  # "the daily allowance expires on a rolling 24-hour window"


@dataclass
class QuotaState:
    """The daily quota as the server last reported it (X-RateLimit-Limit / -Remaining)."""

    limit: int | None = None
    remaining: int | None = None

    def update(self, headers: Mapping[str, str], overtaken: int = 0) -> None:
        """The counts an answer gives. Answers overtake one another (a page arrives after
        the small request sent beside it, which the server counted later), so a count of
        what is left that is higher than the last by no more than the `overtaken` requests
        in flight at once is an older count, not requests freed up: the lower one stays."""
        if (limit := header_count(headers.get("X-RateLimit-Limit"))) is not None:
            self.limit = limit
        left = header_count(headers.get("X-RateLimit-Remaining"))
        if left is not None and (
            self.remaining is None or left < self.remaining or left > self.remaining + overtaken
        ):
            self.remaining = left


def header_count(value: str | None) -> int | None:
    """A count a header gives (X-Total-Count, X-RateLimit-Remaining): digits, at most 18 of
    them (a hostile 5,000 made int() raise); anything else is no count. A header a proxy
    sent twice comes joined ("503, 503"): one count when every copy gives the same, else none
    (two counts that differ say neither is to be trusted)."""
    copies = {part.strip() for part in value.split(",")} if value else set()
    text = copies.pop() if len(copies) == 1 else ""
    return int(text) if text.isdigit() and text.isascii() and len(text) <= 18 else None


@dataclass
class RequestStats:
    sent: int = 0  # every attempt that went on the wire (each one costs quota)
    by_status: Counter[tuple[str, int]] = field(default_factory=Counter)  # (read|write, status)
    errors: Counter[str] = field(default_factory=Counter)  # transport failures by kind
    retries: int = 0
    throttled: int = 0  # 429s for the per-second ceiling
    waited_pacing: float = 0.0
    waited_backoff: float = 0.0
    sent_minutes: Counter[str] = field(default_factory=Counter)  # "yyyy-mm-dd HH:MM" UTC -> n
    notices: list[str] = field(default_factory=list)  # what the client changed and why

    def count_sent(self, now: datetime | None = None) -> None:
        self.sent += 1
        self.sent_minutes[(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M")] += 1

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.sent,
            "by_status": {f"{k} {s}": n for (k, s), n in sorted(self.by_status.items())},
            "transport_errors": dict(self.errors),
            "retries": self.retries,
            "throttled_429": self.throttled,
            "waited_pacing_s": round(self.waited_pacing, 2),
            "waited_backoff_s": round(self.waited_backoff, 2),
            "notices": list(dict.fromkeys(self.notices)),  # a listing read twice says it once
        }


def frees_up(
    sent_minutes: Iterable[tuple[str, int]], needed: int, now: datetime | None = None
) -> datetime | None:
    """When `needed` of the requests this tool sent in the last 24 hours will have expired
    from Insightly's rolling window (None: not that many were sent). Other integrations on
    the account share the allowance, so this is the earliest such moment, not a promise."""
    now = now or datetime.now(UTC)
    freed = 0
    for minute, count in sorted(sent_minutes):
        at = datetime.strptime(minute, "%Y-%m-%d %H:%M").replace(tzinfo=UTC) + ROLLING_WINDOW
        if at + timedelta(minutes=1) <= now:
            continue  # already expired
        freed += count
        if freed >= needed:
            return at + timedelta(minutes=1)
    return None
