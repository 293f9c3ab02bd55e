"""What the client has spent and what the account has left: for budgets and end-of-run summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class QuotaState:
    """The daily quota as the server last reported it (X-RateLimit-Limit / -Remaining)."""

    limit: int | None = None
    remaining: int | None = None

    def update(self, headers: Mapping[str, str]) -> None:
        for name, attr in (("X-RateLimit-Limit", "limit"), ("X-RateLimit-Remaining", "remaining")):
            value = headers.get(name)
            if value is not None and value.strip().isdigit():
                setattr(self, attr, int(value))


@dataclass
class RequestStats:
    sent: int = 0  # every attempt that went on the wire (each one costs quota)
    by_status: Counter[tuple[str, int]] = field(default_factory=Counter)  # (read|write, status)
    errors: Counter[str] = field(default_factory=Counter)  # transport failures by kind
    retries: int = 0
    throttled: int = 0  # 429s for the per-second ceiling
    waited_pacing: float = 0.0
    waited_backoff: float = 0.0

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.sent,
            "by_status": {f"{k} {s}": n for (k, s), n in sorted(self.by_status.items())},
            "transport_errors": dict(self.errors),
            "retries": self.retries,
            "throttled_429": self.throttled,
            "waited_pacing_s": round(self.waited_pacing, 2),
            "waited_backoff_s": round(self.waited_backoff, 2),
        }
