"""One typed summary of a run, for everything that reports one: `--summary-json`, `status
--json`, `report` and the Dagster assets' metadata all read this, so they never disagree.

Its JSON shape is `insightly_etl/schemas/summary.schema.json` (shipped; a test holds the two
together). Pure data: no click, no pandas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from insightly_etl.errors import StopReason

SCHEMA_VERSION = 1

STOP_REASONS = tuple(StopReason)  # why a run stopped early; None: it ran to its end


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    return utc_text(datetime.now(UTC))


@dataclass
class RunSummary:
    """What a command did: counts per object, requests, the quota, and how it ended."""

    command: str
    started_utc: str = field(default_factory=utc_now)
    finished_utc: str | None = None
    exit_code: int = 0
    stop_reason: StopReason | None = None
    error: str | None = None  # the one-line error (redacted), when the run failed
    retry_not_before: str | None = None  # UTC; set when the stop was the quota or reserve
    account: str | None = None  # the account's subdomain (GET /Instance)
    account_name: str | None = None  # its name in accounts.yaml
    requests: int = 0
    throttled_429: int = 0
    retries: int = 0
    quota_remaining: int | None = None
    quota_limit: int | None = None
    # object -> counts: export (rows, new, changed, deleted, requests), import (created,
    # updated, unchanged, rejected, …), undo (deleted, restored, conflict, …)
    objects: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    accounts: list[RunSummary] = field(default_factory=list)  # export --accounts: one each
    dry_run: bool = False  # import/undo --dry-run: the counts are what it would do

    def count(self, name: str, **counts: int) -> None:
        self.objects.setdefault(name, {}).update(counts)

    def took(
        self, stats: dict[str, Any], quota_remaining: int | None, quota_limit: int | None
    ) -> None:
        """The client's accounting (RequestStats.summary()) and the quota it last saw."""
        self.requests = int(stats.get("requests") or 0)
        self.throttled_429 = int(stats.get("throttled_429") or 0)
        self.retries = int(stats.get("retries") or 0)
        self.quota_remaining, self.quota_limit = quota_remaining, quota_limit

    def add_up(self) -> None:
        """The top level of `export --accounts`: the accounts' counts, requests and files
        added up; how they ended, as one stop reason and one error line."""
        for account in self.accounts:
            for name, counts in account.objects.items():
                total = self.objects.setdefault(name, {})
                for key, n in counts.items():
                    total[key] = total.get(key, 0) + n
            self.files += account.files
        self.requests = sum(a.requests for a in self.accounts)
        self.throttled_429 = sum(a.throttled_429 for a in self.accounts)
        self.retries = sum(a.retries for a in self.accounts)
        failed = [a for a in self.accounts if a.exit_code]
        reasons = {a.stop_reason for a in failed}
        if len(reasons) > 1 and reasons <= {StopReason.QUOTA, StopReason.RESERVE}:
            reasons = {StopReason.QUOTA}  # either way the day's allowance: retry_not_before
        self.stop_reason = (
            reasons.pop() if len(reasons) == 1 else (StopReason.ERROR if failed else None)
        )
        later = [a.retry_not_before for a in failed if a.retry_not_before]
        self.retry_not_before = max(later) if later else None
        if failed:
            self.error = f"{len(failed)} of {len(self.accounts)} accounts failed: " + ", ".join(
                a.account_name or "" for a in failed
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accounts"] = [a.to_dict() for a in self.accounts]
        return {"schema_version": SCHEMA_VERSION, **data}

    def write(self, path: Path) -> None:
        """Written whole or not at all (a reader never sees half a file), or into the pipe or
        device `path` already is."""
        from insightly_etl.files import write_json_atomic  # pandas: only once one is written

        write_json_atomic(Path(path), self.to_dict(), into_special=True)


def worst_exit(codes: Iterable[int]) -> int:
    """The exit code of several runs (accounts): 0 if all succeeded; the failures' own code
    when they agree (75 for quota stops: run again later); else 1."""
    failed = {c for c in codes if c}
    return failed.pop() if len(failed) == 1 else (1 if failed else 0)


def schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in the package: `summary`, `status`, `log-line`."""
    text = resources.files("insightly_etl.schemas").joinpath(f"{name}.schema.json").read_text()
    result: dict[str, Any] = json.loads(text)
    return result
