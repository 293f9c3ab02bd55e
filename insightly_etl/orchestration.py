"""Dagster assets for many accounts (the `dagster` extra): one asset per object type,
partitioned by account (static partitions from accounts.yaml).

    # definitions.py, loaded by `dagster dev -f definitions.py`
    from insightly_etl.orchestration import insightly_definitions
    defs = insightly_definitions("accounts.yaml", "exports/", objects=["contacts", "leads"])

A materialisation runs the library in this process (no CLI, no subprocess): it exports one
object of one account into `exports/account=<name>/`, and reports rows, new, changed, deleted
and requests as metadata. A stop for the account's daily quota becomes a retry no earlier than
`retry_not_before` (Dagster's RetryRequested). Dagster is imported here only.
"""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext  # evaluated (no __future__ annotations): Dagster reads it

from insightly_etl.accounts import AccountEntry, pick, read_accounts
from insightly_etl.api import InsightlyClient
from insightly_etl.errors import CheckpointInUse, QuotaError, StopReason
from insightly_etl.extract import ExportOptions, ExportResult, extract_objects
from insightly_etl.extract.export import resolve_objects

DEFAULT_OBJECTS = ("contacts", "organisations", "leads", "opportunities", "projects", "tasks")
QUOTA_RETRIES = 3  # a quota stop is retried this often, each after its retry_not_before
LOCKED_WAIT_S = 60  # another run holds the account's folder: try again after this long


def insightly_definitions(
    accounts_file: str | Path,
    out_dir: str | Path,
    objects: list[str] | tuple[str, ...] = DEFAULT_OBJECTS,
    *,
    incremental: bool = False,
    detect_deletes: bool = False,
    rate_limit: float = 10.0,
) -> dg.Definitions:
    """Definitions with an asset per object type, each partitioned by the accounts of
    `accounts_file` (read now: a mistake in it fails at load time, naming the entry).
    `detect_deletes`: incremental runs also find the records deleted in Insightly (one id
    listing per object), as `export --detect-deletes` does."""
    path = Path(accounts_file)
    entries = read_accounts(path)
    partitions = dg.StaticPartitionsDefinition([e.name for e in entries])
    assets = [
        _asset(name, path, Path(out_dir), partitions, incremental, detect_deletes, rate_limit)
        for name in resolve_objects(list(objects))
    ]
    # one account's assets share its folder and its rate limit: one at a time in a run (the
    # CLI's `dagster asset materialize` would otherwise use the multiprocess executor)
    return dg.Definitions(assets=assets, executor=dg.in_process_executor)


def _asset(
    name: str,
    accounts_file: Path,
    out_dir: Path,
    partitions: dg.PartitionsDefinition,
    incremental: bool,
    detect_deletes: bool,
    rate_limit: float,
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        key_prefix=["insightly"],
        partitions_def=partitions,
        group_name="insightly",
        description=f"Insightly {name}, one account per partition, as Parquet in "
        f"{out_dir}/account=<name>/",
        kinds={"parquet"},
        output_required=False,  # a partition whose entry leaves the object out: nothing
    )
    def export_object(context: AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        entry = pick(read_accounts(accounts_file), context.partition_key, accounts_file)
        if entry.objects and name not in resolve_objects(list(entry.objects)):
            # as `export --accounts` does: an entry's objects: is what it exports
            context.log.info(
                f"{entry.name}'s entry in {accounts_file} lists objects: "
                f"{', '.join(entry.objects)}; {name} is not exported for it"
            )
            return
        later = incremental and (out_dir / f"account={entry.name}").exists()
        options = ExportOptions(
            out_dir=out_dir / f"account={entry.name}",
            objects=[name],
            incremental=later,
            detect_deletes=later and detect_deletes,
        )
        try:
            result, retry_at = asyncio.run(_export(entry, options, rate_limit))
        except CheckpointInUse as exc:  # another run exports this account now: wait for it
            context.log.warning(f"{entry.name}: {exc}; retrying in {LOCKED_WAIT_S} s")
            raise dg.RetryRequested(
                max_retries=QUOTA_RETRIES, seconds_to_wait=LOCKED_WAIT_S
            ) from None
        if retry_at is not None:
            at, why = retry_at
            wait = max(0.0, (at - datetime.now(UTC)).total_seconds())
            context.log.warning(f"{entry.name}: stopped by the {why}; retrying in {wait:.0f} s")
            raise dg.RetryRequested(max_retries=QUOTA_RETRIES, seconds_to_wait=wait)
        assert result is not None
        (done,) = [o for o in result.objects if o.name == name]
        if done.refusal is not None:
            raise done.refusal
        yield dg.MaterializeResult(
            metadata={
                "account": result.account or entry.name,
                "rows": done.rows,
                "new": done.new,
                "changed": done.changed,
                "deleted": done.deleted,
                "requests": result.requests,
                "path": dg.MetadataValue.path(str(options.out_dir / (done.file or ""))),
            }
        )

    return export_object


async def _export(
    entry: AccountEntry, options: ExportOptions, rate_limit: float
) -> tuple[ExportResult | None, tuple[datetime, str] | None]:
    """The export, or (after a quota or reserve stop) when to try again, and which stopped
    it: the daily quota, or the reserve the entry keeps."""
    client = InsightlyClient(
        entry.settings(),
        rate=min(rate_limit, entry.rate or rate_limit),
        reserve=entry.reserve,
    )
    async with client:
        try:
            return await extract_objects(client, options), None
        except QuotaError as exc:
            at = client.retry_not_before()
            if at is None:  # a budget: nothing to wait for, so it is an error
                raise
            why = "reserve" if exc.stop_reason == StopReason.RESERVE else "daily quota"
            return None, (at, why)
