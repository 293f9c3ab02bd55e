"""`export --with links,state_history`: a request per record, announced first, refused above
the quota minus the reserve (issues 12, 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from insightly_etl.cli import main
from insightly_etl.errors import InputError, ReserveReached
from insightly_etl.extract import ExportOptions, extract_objects
from tests.conftest import asgi_client, sandbox_client

pytestmark = pytest.mark.anyio


async def test_links_and_state_history_come_a_request_per_record_at_the_announced_cost(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    opps = sb.account.collections["Opportunities"].ids
    contact = sb.account.collections["Contacts"].ids[0]
    async with asgi_client(sb) as c:
        await c.put(
            f"Opportunities/{opps[0]}/StateChange",
            json={"FOR_OPPORTUNITY_STATE": "Lost", "STATE_REASON_ID": 1},
        )
        await c.put(f"Opportunities/{opps[0]}/StateChange", json={"FOR_OPPORTUNITY_STATE": "Won"})
        await c.post(
            f"Opportunities/{opps[1]}/Links",
            json={"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": contact, "ROLE": "Champion"},
        )
    announced = []
    async with sandbox_client(sb) as client:
        result = await extract_objects(
            client,
            ExportOptions(
                out_dir=tmp_path, objects=["opportunities"], with_=["links", "state_history"]
            ),
            announce=announced.append,
        )
    plan = announced[0]
    assert plan.parts == {
        ("links", "opportunities"): len(opps),
        ("state_history", "opportunities"): len(opps),
    }
    assert result.sub_collections["links"]["requests"] == len(opps)
    assert result.sub_collections["state_history"]["requests"] == len(opps)
    history = pq.read_table(tmp_path / "state_history.parquet").to_pylist()
    assert [(h["opportunity_id"], h["state"], h["state_reason"]) for h in history] == [
        (opps[0], "Lost", "Price too high"),
        (opps[0], "Won", None),
    ]
    links = pq.read_table(tmp_path / "links.parquet").to_pylist()
    assert {
        "object": "opportunities",
        "id": opps[1],
        "linked_object": "Contact",
        "linked_id": contact,
        "role": "Champion",
    }.items() <= next(lk for lk in links if lk["role"] == "Champion").items()
    m = json.loads((tmp_path / "_manifest.json").read_text())
    assert m["links"]["per_record"] == ["opportunities"] and m["links"]["rows"] == len(links)


async def test_a_with_that_would_cross_the_quota_minus_the_reserve_is_refused_before_exporting(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(daily_quota=200)
    async with sandbox_client(sb, reserve=10) as client:
        with pytest.raises(ReserveReached) as refused:
            await extract_objects(
                client, ExportOptions(out_dir=tmp_path, objects=["contacts"], with_=["links"])
            )
    n = len(sb.account.collections["Contacts"].ids)
    assert f"--with costs about {n} request(s), one per record (links of {n} contacts)" in (
        refused.value.message
    )
    assert "more than this run may spend (189); nothing was exported" in refused.value.message
    assert not (tmp_path / "contacts.parquet").exists()
    assert sum(sb.stats.values()) == 1  # the one count probe


async def test_with_state_history_needs_opportunities_in_the_export(
    make_sandbox, tmp_path: Path
) -> None:
    async with sandbox_client(make_sandbox()) as client:
        with pytest.raises(
            InputError, match="--with state_history: the export names no opportunities"
        ):
            await extract_objects(
                client,
                ExportOptions(out_dir=tmp_path, objects=["contacts"], with_=["state_history"]),
            )


def test_the_cli_prints_the_cost_and_refuses_an_unknown_name(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["export", "--sandbox", "--out", str(tmp_path), "--with", "comets"])
    assert bad.exit_code == 2
    assert "--with 'comets': not a per-record collection this tool exports" in bad.output
    ok = runner.invoke(
        main, ["export", "projects", "--sandbox", "--out", str(tmp_path), "--with", "links", "-q"]
    )
    assert ok.exit_code == 0, ok.output
    assert "--with costs about 15 request(s), one per record (links of 15 projects)" in ok.output
