"""An import's story, read from its checkpoint alone (no request): what `status` prints,
`status --json` writes and `report` draws. Read-only: nothing is created or changed."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from insightly_etl.errors import StopReason
from insightly_etl.load.checkpoint import DAMAGE, Checkpoint, damaged
from insightly_etl.load.importer import summarise
from insightly_etl.load.states import OUTCOMES, STOP_EXITS, UNSETTLED
from insightly_etl.moments import iso_instant
from insightly_etl.summary import RunSummary

FIRST_REJECTS = 50  # the report's table of rejects: the first this many, by line


def iso_utc(text: str | None) -> str | None:
    """`2026-12-04 07:16:57` (as the checkpoint keeps it) -> `2026-12-04T07:16:57Z`."""
    moment = iso_instant(text) if text else None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass
class ImportHistory:
    checkpoint: str
    source: str | None
    object: str | None
    account: str | None
    account_name: str | None  # its name in accounts.yaml, when imported with --account
    created_utc: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)  # action, state, rows
    steps: list[dict[str, Any]] = field(default_factory=list)  # step, state, steps
    runs: list[dict[str, Any]] = field(default_factory=list)  # started, finished, requests, …
    undo: dict[str, int] = field(default_factory=dict)
    unsettled: int = 0  # in_flight + unknown: writes whose answer never came
    requests_by_minute: dict[str, int] = field(default_factory=dict)  # "yyyy-mm-dd HH:MM" UTC
    rejects: list[dict[str, Any]] = field(default_factory=list)  # the first: line, state, message
    rejects_by_reason: dict[str, int] = field(default_factory=dict)  # "column: reason" -> rows
    # rows by outcome, in the words of the import's own summary (created, updated, …)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(int(r["requests"] or 0) for r in self.runs)

    def requests_by_day(self) -> dict[str, int]:
        days: Counter[str] = Counter()
        for minute, n in self.requests_by_minute.items():
            days[minute[:10]] += n
        return dict(sorted(days.items()))

    def to_dict(self) -> dict[str, Any]:
        # 2: runs carry their kind, and outcomes say reserve or budget (checkpoint version 2)
        return {"schema_version": 2, **asdict(self), "requests": self.requests}

    def summary(self) -> RunSummary:
        """The run summary of the import as a whole (every run so far), in the words and
        shape of the import's own --summary-json; 429s are not recorded in a checkpoint."""
        last = self.runs[-1] if self.runs else {}
        # how the import stands: its own last run's end, not a reconcile's or an undo's since
        # (runs before checkpoint version 2 have no kind)
        imports = [r for r in self.runs if r.get("kind") in (None, "import")]
        ended: dict[str, Any] = imports[-1] if imports else {}
        result = RunSummary(
            command="import",
            started_utc=iso_utc(self.created_utc) or "",
            finished_utc=iso_utc(last.get("finished_utc")),
            account=self.account,
            account_name=self.account_name,
            requests=self.requests,
        )
        outcome = ended.get("outcome")
        if outcome in STOP_EXITS:
            result.stop_reason, result.exit_code = StopReason(outcome), STOP_EXITS[outcome]
        elif outcome == StopReason.ERROR:
            result.stop_reason, result.exit_code = StopReason.ERROR, 1
            result.error = "the last run ended in an error, after it had sent writes"
        elif ended and not outcome:
            result.stop_reason, result.exit_code = StopReason.ERROR, 1
            result.error = "the last run did not finish: it was killed, or it is still running"
        else:
            unfinished = ("rejected", "duplicate", "failed", "left")
            result.exit_code = 1 if any(self.outcomes.get(k) for k in unfinished) else 0
        if self.object:
            result.count(self.object, **self.outcomes)
        return result


# a value inside a message: quoted either way, or a number standing alone
_VALUE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(?<![\w.])-?\d[\d.,:-]*(?![\w.])")
MOST_REASONS = 30  # the commonest reasons by name; the rest are added up as one


def _reasons(message: str | None) -> list[str]:
    """`Email: 'x@' is not a plausible email address; Tier: 'gold' is not an option…` ->
    `Email: … is not a plausible email address`, `Tier: … is not an option…`: the column and
    the reason, without the values (the table of rejects shows them)."""
    parts = [p.strip() for p in (message or "").split("; ") if p.strip()] or ["(no message)"]
    return [_VALUE.sub("…", p)[:160] for p in parts if not p.startswith("did you mean")]


def read_history(path: Path) -> ImportHistory:
    try:
        return _read(path)
    except DAMAGE as exc:
        raise damaged(path, exc) from None


def _read(path: Path) -> ImportHistory:
    cp = Checkpoint.read_only(path)
    try:
        history = ImportHistory(
            checkpoint=str(path),
            source=cp.meta("source"),
            object=cp.meta("object"),
            account=cp.meta("account"),
            account_name=cp.meta("account_name"),
            created_utc=cp.meta("created_utc"),
        )
        for (action, state), n in sorted(
            cp.rows.counts(created_first=True).items(), key=lambda kv: (kv[0][1], kv[0][0] or "")
        ):
            history.rows.append({"action": action, "state": str(state), "rows": n})
            if state in UNSETTLED:
                history.unsettled += n
        for (step, step_state), n in sorted(
            cp.steps.counts().items(), key=lambda kv: (kv[0][1], kv[0][0] or "")
        ):
            history.steps.append({"step": step, "state": str(step_state), "steps": n})
        history.runs = cp.runs()
        history.undo = {str(state): n for state, n in sorted(cp.undo.summary().items())}
        minutes: Counter[str] = Counter()
        for minute, n in cp.sent_minutes():
            minutes[minute] += int(n)
        history.requests_by_minute = dict(sorted(minutes.items()))
        reasons: Counter[str] = Counter()
        for line, refused, message in cp.rows.refused():
            reasons.update(_reasons(message))
            if len(history.rejects) < FIRST_REJECTS:
                history.rejects.append({"line": line, "state": refused, "message": message or ""})
        common = reasons.most_common(MOST_REASONS)
        rest = sum(reasons.values()) - sum(n for _, n in common)
        history.rejects_by_reason = dict(common) | ({"(other reasons)": rest} if rest else {})
        counts = asdict(summarise(cp, bad_rows=0))
        history.outcomes = {k: int(counts[k]) for k in OUTCOMES}
        return history
    finally:
        cp.close()


def dumps(history: ImportHistory) -> str:
    return json.dumps(history.to_dict(), indent=2, ensure_ascii=False)
