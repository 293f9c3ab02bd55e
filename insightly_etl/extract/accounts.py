"""Several accounts exported at once, in one process (`export --accounts accounts.yaml`):
each with a client of its own, paced on that account's own limits, into `DIR/account=<name>/`.
One account failing does not stop the others; each ends with its result or its error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from insightly_etl.accounts import AccountEntry
from insightly_etl.api import InsightlyClient
from insightly_etl.config import redact
from insightly_etl.errors import KEY_HINT, InsightlyEtlError, StopReason
from insightly_etl.extract.export import (
    ExportOptions,
    ExportResult,
    extract_objects,
    resolve_objects,
)
from insightly_etl.progress import Progress
from insightly_etl.summary import utc_now

log = logging.getLogger(__name__)


@dataclass
class AccountRun:
    entry: AccountEntry
    out_dir: str
    result: ExportResult | None = None
    exit_code: int = 0
    stop_reason: StopReason | None = None
    error: str | None = None
    hint: str | None = None  # what to do about the error, as the error itself says
    client: InsightlyClient | None = None  # what it spent, and when to retry after a stop
    finished_utc: str | None = None


async def export_accounts(
    entries: list[AccountEntry],
    options: ExportOptions,
    open_client: Callable[[AccountEntry], InsightlyClient],
    progress_for: Callable[[AccountEntry, int], Progress],
) -> list[AccountRun]:
    """Export every account concurrently; `options.out_dir` is the parent of the accounts'
    folders, `options.objects` their default object types."""

    async def one(i: int, entry: AccountEntry) -> AccountRun:
        out = options.out_dir / f"account={entry.name}"
        run = AccountRun(entry, str(out))
        mine = replace(
            options,
            out_dir=out,
            objects=resolve_objects(list(entry.objects)) if entry.objects else options.objects,
        )
        run.result = ExportResult()  # as far as it got, when it stops
        try:
            async with open_client(entry) as client:
                run.client = client
                await extract_objects(client, mine, progress_for(entry, i), result=run.result)
            refused = [
                o.refusal for o in run.result.objects if o.refusal and o.name in mine.objects
            ]
            if refused:  # an object the entry named and the account cannot read
                raise refused[0]
        except InsightlyEtlError as exc:
            run.exit_code, run.stop_reason = exc.exit_code, exc.stop_reason
            hint = entry.key_hint if exc.hint == KEY_HINT else exc.hint
            run.error, run.hint = redact(str(exc)), redact(hint) if hint else None
        except OSError as exc:
            run.exit_code, run.stop_reason, run.error = 74, StopReason.ERROR, redact(str(exc))
        except Exception as exc:  # a bug, or memory: this account's failure, not the others'
            log.debug("%s: internal error", entry.name, exc_info=True)  # -vv shows the traceback
            run.exit_code, run.stop_reason = 70, StopReason.ERROR
            run.hint = "This is a bug in insightly-etl. Run again with -vv for the traceback and report it."
            run.error = redact(f"internal error: {type(exc).__name__}: {exc}")
        run.finished_utc = utc_now()
        return run

    return list(await asyncio.gather(*(one(i, e) for i, e in enumerate(entries))))
