"""gather_all and settle: nothing outlives a failure, nothing is left unretrieved."""

from __future__ import annotations

import asyncio
import gc

import pytest

from insightly_etl.api.tasks import gather_all, settle


def test_the_first_failure_cancels_the_others_and_is_raised() -> None:
    ended: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.Event().wait()  # never set: only a cancellation ends it
        finally:
            ended.append("slow")

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("first")

    async def main() -> None:
        with pytest.raises(ValueError, match="first"):
            await gather_all(slow(), fails(), slow())
        assert ended == ["slow", "slow"]  # both ended before the error reached us

    asyncio.run(main())


def test_settle_retrieves_a_finished_failure(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("nobody awaited me")

    async def main() -> None:
        future = asyncio.ensure_future(fails())
        await asyncio.sleep(0)
        assert future.done()
        await settle([future])

    asyncio.run(main())
    gc.collect()
    assert "never retrieved" not in caplog.text


def test_results_come_back_in_order() -> None:
    async def value(n: int) -> int:
        await asyncio.sleep(0.001 * (3 - n))
        return n

    assert asyncio.run(gather_all(value(1), value(2), value(3))) == [1, 2, 3]
