"""The import's vocabulary: every state, action and stop reason, typed, in one place.

They are `StrEnum`s, so a member is also its text: the checkpoint stores the text, and its
`CHECK` constraints are made from these lists (load/checkpoint/store.py), so no other value can
ever be written. Option values are `Literal`s; the command line offers exactly their values.

    rows     RowState   planned ─▶ in_flight ─▶ done | failed
                                        └────▶ unknown (reconciled before anything is re-sent)
                        rejected (validation) · duplicate (in the file) · skipped (by option)
             Action     what a row's write is: create | update | unchanged | duplicate | skip
    steps    StepState  in_flight ─▶ done | failed, or unknown
             StepAction the request a step sent: pipeline | stage | unpipeline | state | link,
                        or `already` (none was needed)
    undo     UndoState  in_flight ─▶ deleted | restored | conflict | gone | nothing | failed,
                        or unknown
    a run    Stop       why it stopped before the end: quota | interrupted | record_limit
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, get_args

from insightly_etl.errors import StopReason


class RowState(StrEnum):
    PLANNED = "planned"
    IN_FLIGHT = "in_flight"  # committed before the request left: the outcome may be unknown
    UNKNOWN = "unknown"  # the answer was lost: reconciled before anything is re-sent
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"  # by validation: never sent
    DUPLICATE = "duplicate"  # shares its key with another row of the file
    SKIPPED = "skipped"  # by an option (--on-match skip, --skip-duplicates, …)


# rows by outcome, as an import's summary counts them (--summary-json, report, status)
OUTCOMES = ("created", "updated", "unchanged", "rejected", "duplicate", "skipped", "failed",
            "left", "unknown", "not_applied")  # fmt: skip
UNSETTLED = frozenset({RowState.IN_FLIGHT, RowState.UNKNOWN})  # a write that may have happened
LEFT = frozenset({RowState.PLANNED, *UNSETTLED})  # still to do


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"  # the record already holds the row: no request
    DUPLICATE = "duplicate"
    SKIP = "skip"


WRITES = frozenset({Action.CREATE, Action.UPDATE})  # actions that send a request
# a done row's action as the results say it (any other done row is "unchanged")
PAST = {Action.CREATE: "created", Action.UPDATE: "updated", Action.UNCHANGED: "unchanged"}


class Reconciled(StrEnum):
    """What looking for a lost create's record found (load/reconcile.py)."""

    FOUND = "found"  # its record: done, with it
    AMBIGUOUS = "ambiguous"  # records fit equally: unknown, for a person; never sent again
    NOT_YET = "not_yet"  # not found, sent too recently to say: unknown, looked for later
    NOT_MADE = "not_made"  # not found RESEND_AFTER on, by the server's clock: planned again


class StepState(StrEnum):
    IN_FLIGHT = "in_flight"
    UNKNOWN = "unknown"
    DONE = "done"
    FAILED = "failed"


class StepAction(StrEnum):
    PIPELINE = "pipeline"
    STAGE = "stage"
    UNPIPELINE = "unpipeline"
    STATE = "state"
    LINK = "link"
    ALREADY = "already"  # the step was already so: no request


STEP_REQUESTS = tuple(a for a in StepAction if a is not StepAction.ALREADY)


class UndoState(StrEnum):
    IN_FLIGHT = "in_flight"  # its DELETE or PUT was handed to the network
    UNKNOWN = "unknown"  # its answer was lost: the next undo reads the record first
    DELETED = "deleted"
    RESTORED = "restored"
    CONFLICT = "conflict"  # changed since the import: left alone
    GONE = "gone"  # deleted in Insightly since the import
    NOTHING = "nothing"  # already as it was before the import
    FAILED = "failed"


# final: never undone twice (a failed, in-flight or unknown one is read and decided again)
UNDONE = frozenset(UndoState) - {UndoState.FAILED, UndoState.IN_FLIGHT, UndoState.UNKNOWN}


class Stop(StrEnum):
    QUOTA = "quota"  # the daily quota, --max-requests or --reserve: exit 75
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM: exit 130
    RECORD_LIMIT = "record_limit"  # the plan's record limit (creates only): exit 69

    @property
    def exit_code(self) -> int:
        return {Stop.QUOTA: 75, Stop.INTERRUPTED: 130, Stop.RECORD_LIMIT: 69}[self]


# how a stopped run is recorded (the checkpoint's runs.outcome) and its exit code: a Stop, or
# a quota stop told apart in a run summary's words (--reserve reached, --max-requests spent)
STOP_EXITS: dict[str, int] = {str(stop): stop.exit_code for stop in Stop} | {
    str(reason): Stop.QUOTA.exit_code for reason in (StopReason.RESERVE, StopReason.BUDGET)
}


# option values, as the command line offers them (the first is the default)
OnMatch = Literal["update", "skip", "error"]
OnDuplicate = Literal["error", "first", "last"]
OnDuplicateEmail = Literal["warn", "skip", "error"]
OnConflict = Literal["skip", "overwrite"]


def choices(option: object) -> list[str]:
    """The values of a `Literal` option type, in order."""
    return [str(v) for v in get_args(option)]


@dataclass(frozen=True)
class LastWrite:
    """What this import's earlier runs last wrote to a row's record (the checkpoint's
    RowJournal.last_write): the record's DATE_UPDATED_UTC as that write left it, and each
    field an update changed, with the value written. Planning tells the import's own writes
    from a colleague's edits by them."""

    stamp: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
