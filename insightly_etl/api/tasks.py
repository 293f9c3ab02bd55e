"""Concurrent work that never outlives its failure.

`asyncio.gather` leaves the other awaitables running when one raises, and a future nobody
awaits after an error logs "Task exception was never retrieved" with a traceback. Every
place that runs requests side by side goes through `gather_all`; futures started ahead
of need (a page's custom-field definitions) are closed with `settle`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """Like `asyncio.gather`, but the first failure (or a cancellation) cancels the rest,
    waits for them to end, then raises: no request goes on after the run has failed."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        await settle(tasks)
        raise


async def settle(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel what is still running, wait for it, and retrieve every outcome, so that
    nothing is left to be reported later as an unretrieved exception."""
    pending = list(futures)
    for future in pending:
        future.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
