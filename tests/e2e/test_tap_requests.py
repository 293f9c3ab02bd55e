"""The Singer taps' request pattern (tap-insightly, two forks), reproduced — not their code — as
a regression test of the sandbox's routing and binding against real uvicorn: lower-case paths,
`count_total=true`, `updated_after_utc=None` on the first run and `yyyy-MM-dd HH:mm:ss` after,
paging by `X-Total-Count` with `skip`/`top=500`, 4 requests in flight."""

from __future__ import annotations

import asyncio

import httpx

from insightly_etl.sandbox import SandboxConfig, running_sandbox
from tests.conftest import KEY

# the taps' streams: lower-case resource names, PipelineStages mapped, as they send them
STREAMS = ["contacts", "opportunities", "organisations", "users", "pipelines", "PipelineStages"]
CAN_FILTER = {"contacts", "opportunities", "organisations", "users"}


async def tap_stream(
    client: httpx.AsyncClient, sem: asyncio.Semaphore, resource: str, bookmark: str
) -> tuple[int, set[int]]:
    """One stream as the taps read it: pages until skip passes the total. (status, ids)"""
    ids: set[int] = set()
    skip = 0
    while True:
        query = {"count_total": "true"}
        if resource in CAN_FILTER:
            query["updated_after_utc"] = bookmark  # "None" on a first run: str(None)
        query.update(skip=str(skip), top="500")
        # the taps join the query by hand: "k=v&k=v", spaces and all
        url = resource + "?" + "&".join(f"{k}={v}" for k, v in query.items())
        async with sem:
            r = await client.get(url)
        if r.status_code != 200:
            return r.status_code, ids
        ids.update(next(v for k, v in rec.items() if k.endswith("_ID")) for rec in r.json())
        skip += 500
        total = r.headers.get("x-total-count")
        if total is None or skip > int(total):
            return 200, ids


def test_the_singer_taps_request_pattern_reads_every_stream() -> None:
    config = SandboxConfig(api_key=KEY, generate={"Contacts": 1200}, rate_limit=400)
    with running_sandbox(config) as sb:

        async def run(bookmark: str) -> dict[str, tuple[int, set[int]]]:
            sem = asyncio.Semaphore(4)
            async with httpx.AsyncClient(base_url=sb.url, auth=(KEY, ""), timeout=30) as c:
                results = await asyncio.gather(*(tap_stream(c, sem, s, bookmark) for s in STREAMS))
            return dict(zip(STREAMS, results, strict=True))

        first = asyncio.run(run("None"))
        later = asyncio.run(run("2999-01-01 00:00:00"))  # a bookmark after every record
        counts = {name: len(c.ids) for name, c in sb.sandbox.account.collections.items()}
    assert {s: status for s, (status, _) in first.items()} == dict.fromkeys(STREAMS, 200)
    assert len(first["contacts"][1]) == counts["Contacts"] > 1200  # every page, every record
    assert len(first["pipelines"][1]) == counts["Pipelines"]
    assert len(first["PipelineStages"][1]) == counts["PipelineStages"]
    assert {s: len(ids) for s, (_, ids) in later.items() if s in CAN_FILTER} == dict.fromkeys(
        CAN_FILTER, 0
    )
