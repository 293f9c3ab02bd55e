"""`insightly-etl sandbox`: serve the local Insightly-compatible API. The only command that
imports `insightly_etl.sandbox` outside `--sandbox`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from insightly_etl.cli.common import LocalPath, choice_option, default_seed_dir, main
from insightly_etl.errors import ConfigError

if TYPE_CHECKING:
    from insightly_etl.sandbox import SandboxConfig


def _parse_generate(value: str | None) -> dict[str, int]:
    from insightly_etl.sandbox.synth import GENERATED

    by_snake = {_snake(name): name for name in GENERATED}
    result: dict[str, int] = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        name, _, count = part.partition("=")
        key = by_snake.get(name.strip().lower()) or (
            name.strip() if name.strip() in GENERATED or name.strip().endswith("__c") else None
        )
        if key is None or not count.strip().isdigit():
            raise click.BadParameter(
                f"{part!r}: expected OBJECT=N with OBJECT one of {', '.join(sorted(by_snake))}"
                " or a custom object of the seed (Name__c)",
                param_hint="--generate",
            )
        result[key] = int(count)
    return result


def _parse_private(values: tuple[str, ...]) -> dict[str, frozenset[int]]:
    """`--private contacts=101,102 --private leads=7` -> {"Contacts": {101, 102}, …}."""
    result: dict[str, frozenset[int]] = {}
    for value in values:
        name, _, ids = value.partition("=")
        parts = [p.strip() for p in ids.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            raise click.BadParameter(
                f"{value!r}: expected OBJECT=ID,ID… (e.g. contacts=101,102)",
                param_hint="--private",
            )
        try:
            (key,) = _parse_generate(f"{name}=0")  # the collection, checked like --generate's
        except click.BadParameter:
            raise click.BadParameter(
                f"{value!r}: expected OBJECT=ID,ID… with OBJECT a standard object "
                "(contacts, leads, …) or a custom object of the seed (Name__c)",
                param_hint="--private",
            ) from None
        result[key] = result.get(key, frozenset()) | {int(p) for p in parts}
    return result


def _parse_accounts(values: tuple[str, ...], config: SandboxConfig) -> list[SandboxConfig]:
    """`--account globex=globex-key,rate=5,quota=2000` -> a config for another account: the
    same seed and behaviour, its own key, subdomain, rate limit, quota (and state file)."""
    from dataclasses import replace

    found: list[SandboxConfig] = []
    keys, subdomains = {config.api_key}, {config.subdomain}
    for value in values:
        head, *extras = value.split(",")
        subdomain, _, key = head.partition("=")
        subdomain, key = subdomain.strip(), key.strip()
        changes: dict[str, object] = {"api_key": key, "subdomain": subdomain}
        for extra in extras:
            name, _, number = extra.partition("=")
            field = {"rate": "rate_limit", "quota": "daily_quota"}.get(name.strip())
            try:
                amount = (float if field == "rate_limit" else int)(number)
            except ValueError:
                field = None
            else:  # a rate from 0.1 to 1000 a second; a quota of one request or more
                if not (0.1 <= amount <= 1000 if field == "rate_limit" else amount >= 1):
                    field = None
                changes[field or "?"] = amount
            if field is None:
                raise click.BadParameter(
                    f"{value!r}: expected SUBDOMAIN=KEY with optional ,rate=N ,quota=N",
                    param_hint="--account",
                )
        if not subdomain or not key or key in keys or subdomain in subdomains:
            raise click.BadParameter(
                f"{value!r}: expected SUBDOMAIN=KEY, the subdomain and the key unlike every "
                "other account's",
                param_hint="--account",
            )
        keys.add(key)
        subdomains.add(subdomain)
        state = config.state
        if state is not None:
            changes["state"] = state.with_name(f"{state.stem}.{subdomain}{state.suffix}")
        found.append(replace(config, **changes))  # type: ignore[arg-type]
    return found


def exposure_warning(host: str) -> str | None:
    """The sandbox's admin routes have no key: say so when it listens beyond loopback."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (
        f"Warning: listening on {host}: anyone who can reach this machine can use the "
        "sandbox, and its admin routes (/_sandbox/…: every record, reset-quota) have no key."
    )


def _snake(endpoint: str) -> str:
    return {
        "Product": "products",
        "Pricebook": "pricebooks",
        "Quotation": "quotations",
        "PricebookEntry": "pricebook_entries",
        "OpportunityLineItem": "opportunity_line_items",
        "QuotationLineItem": "quotation_line_items",
        "Prospect": "prospects",
        "Ticket": "tickets",
    }.get(endpoint, endpoint.lower())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: a free one, printed at start).",
)
@click.option(
    "--api-key", default="sandbox", show_default=True, help="The one API key the sandbox accepts."
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="SUBDOMAIN=KEY[,rate=N][,quota=N]",
    help="Serve another account beside the first (repeatable): its own key, subdomain, records, "
    "rate limit and daily quota, e.g. globex=globex-key,rate=5,quota=2000.",
)
@click.option(
    "--seed",
    type=LocalPath(file_okay=False, path_type=Path),
    default=None,
    help="Seed account directory  [default: sample_data/sandbox, else the built-in seed]",
)
@click.option(
    "--generate",
    help="Add N synthetic records per object on top of the seed, e.g. contacts=100000,leads=500.",
)
@click.option(
    "--record-kb",
    type=click.IntRange(0, 2048),
    default=0,
    help="Make each --generate record about N KB (long text in every script), as on a large "
    "live tenant: 100 makes pages of 500 about 50 MB.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Delay added to every response.",
)
@click.option(
    "--jitter-ms", default=0.0, show_default=True, type=float, help="Random extra delay, 0..N ms."
)
@click.option(
    "--rate-limit",
    default=10.0,
    show_default=True,
    type=float,
    help="Requests/second per key before 429.",
)
@click.option(
    "--daily-quota",
    default=40_000,
    show_default=True,
    type=int,
    help="Requests per day before 429.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of requests that fail (500, 503, slow, or for writes applied-then-dropped).",
)
@click.option(
    "--fault-seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of the fault and jitter draws.",
)
@click.option(
    "--fault-slow-s",
    default=40.0,
    show_default=True,
    type=float,
    help="How long a 'slow' fault takes to answer.",
)
@click.option(
    "--state",
    type=LocalPath(dir_okay=False, path_type=Path),
    help="Persist the account in this SQLite file across restarts.",
)
@choice_option(
    "--if-match-status",
    ["400", "412"],
    "Status for a stale If-Match ETag: 400, as live probes saw, or 412, as documented.",
)
@click.option(
    "--retry-after",
    type=int,
    default=None,
    help="Send Retry-After: N on burst 429s (the real API is not known to).",
)
@choice_option(
    "--put-customfields",
    ["merge", "replace"],
    "Whether a PUT keeps (merge) or erases (replace) the custom fields it leaves out.",
)
@choice_option(
    "--quota-window",
    ["rolling", "calendar"],
    "rolling: a request counts for 24 hours after it was made (Insightly's reference); calendar: the count resets at UTC midnight.",
)
@click.option(
    "--burst",
    type=click.IntRange(1),
    default=None,
    help="Token-bucket size: requests allowed at once before the per-second limit bites  [default: the rate limit]",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(1),
    default=None,
    help="Requests in flight per key beyond this get 429 (a tap's authors saw this live)  [default: unlimited]",
)
@choice_option(
    "--writes",
    ["lenient", "strict"],
    "lenient: read-only fields in a body are ignored and ISO dates taken, as live evidence says; strict: both refused with 400.",
)
@click.option(
    "--deny",
    default="",
    help="Comma-separated objects answering 403, e.g. Leads,Product (a plan or permission gap); "
    "Instance: a user who may not read which account it is.",
)
@click.option(
    "--subdomain",
    help="The account's INSTANCE_SUBDOMAIN in GET /Instance (default: the seed's): two "
    "sandboxes with different subdomains are two accounts to the tool.",
)
@click.option(
    "--record-limit",
    help="Most records the plan holds per object, e.g. contacts=250: creates beyond answer 402.",
)
@choice_option(
    "--shape",
    ["recorded", "complete"],
    "recorded: answers as a live account's recorded ones (unset custom fields left out, "
    'leads\' "" and 0 defaults, PUT 200); complete: every field, null when unset, PUT 201.',
)
@click.option(
    "--private",
    multiple=True,
    help="Records the API user may not see, e.g. contacts=101,102 (repeatable): their GET, "
    "writes and sub-collections answer 403.",
)
@click.option(
    "--private-listed",
    is_flag=True,
    help="List the --private records all the same (whether Insightly does is not known; "
    "they are left out of lists by default).",
)
@click.option(
    "--search-ignores-case",
    is_flag=True,
    help="/Search compares field values case-blind (whether Insightly's does is not known; "
    "exact by default).",
)
@click.option(
    "--list-churn",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="A colleague at work: before each page after the first of a list, this many records "
    "are deleted (half already served) and as many created.",
)
@click.option(
    "--shuffle-lists",
    is_flag=True,
    help="Serve each list request in another order (a server whose order is unstable; "
    "Insightly's is by id).",
)
@click.option(
    "--search-lag",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="/Search does not find a record written in the last N seconds (an index that lags).",
)
@click.option(
    "--normalise-writes",
    is_flag=True,
    help="Trim and collapse spaces in text written and lower-case e-mail addresses (what "
    "Insightly does is not recorded).",
)
@click.option(
    "--no-date-header",
    "date_header",
    flag_value=False,
    default=True,
    help="Answer without a Date header (the tool then has only DATE_UPDATED_UTC for the time).",
)
@choice_option(
    "--date-form",
    ["space", "iso-z", "offset", "fraction"],
    "How answers write date-times: space (yyyy-MM-dd HH:mm:ss, as recorded), iso-z (…T…Z), "
    "offset (…T…+00:00), fraction (…T….250Z).",
)
def sandbox(
    host: str,
    port: int,
    api_key: str,
    accounts: tuple[str, ...],
    seed: Path | None,
    generate: str | None,
    record_kb: int,
    latency_ms: float,
    jitter_ms: float,
    rate_limit: float,
    daily_quota: int,
    fault_rate: float,
    fault_seed: int,
    fault_slow_s: float,
    state: Path | None,
    if_match_status: str,
    retry_after: int | None,
    put_customfields: str,
    quota_window: str,
    burst: int | None,
    max_concurrent: int | None,
    writes: str,
    deny: str,
    subdomain: str | None,
    record_limit: str | None,
    shape: str,
    private: tuple[str, ...],
    private_listed: bool,
    search_ignores_case: bool,
    list_churn: int,
    shuffle_lists: bool,
    search_lag: float,
    normalise_writes: bool,
    date_header: bool,
    date_form: str,
) -> None:
    """Serve a local Insightly-compatible API at http://HOST:PORT/v3.1/ (Ctrl-C stops it)."""
    from insightly_etl.sandbox import SandboxConfig, SeedError, serve

    config = SandboxConfig(
        api_key=api_key,
        seed=seed or default_seed_dir(),
        generate=_parse_generate(generate),
        record_kb=record_kb,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        rate_limit=rate_limit,
        daily_quota=daily_quota,
        fault_rate=fault_rate,
        fault_seed=fault_seed,
        fault_slow_s=fault_slow_s,
        state=state,
        if_match_status=int(if_match_status),
        retry_after=retry_after,
        put_customfields=put_customfields,
        quota_window=quota_window,
        burst=burst,
        max_concurrent=max_concurrent,
        writes=writes,
        deny=frozenset(d.strip() for d in deny.split(",") if d.strip()),
        subdomain=subdomain,
        search_ignores_case=search_ignores_case,
        record_limit=_parse_generate(record_limit),
        shape=shape,
        private=_parse_private(private),
        private_listed=private_listed,
        list_churn=list_churn,
        shuffle_lists=shuffle_lists,
        search_lag_s=search_lag,
        normalise_writes=normalise_writes,
        date_header=date_header,
        date_form=date_form,
    )
    warning = exposure_warning(host)
    if warning:
        click.echo(warning, err=True)
    if record_kb and not generate:
        click.echo("Warning: --record-kb sizes --generate'd records; there are none.", err=True)
    if private_listed and not private:
        click.echo("Warning: --private-listed lists --private records; none is given.", err=True)
    key = "sandbox" if api_key == "sandbox" else "the one given by --api-key"
    more = _parse_accounts(accounts, config)

    def announce(url: str) -> None:  # the port bound: --port 0 takes a free one
        click.echo(f"Insightly sandbox on {url} (API key: {key})", err=True)
        for other in more:
            click.echo(f"  and account {other.subdomain} (its key from --account)", err=True)

    try:
        serve(config, host=host, port=port, announce=announce, more=more)
    except SeedError as exc:  # its message names the option (--seed, --state, --deny …)
        raise click.UsageError(str(exc)) from None
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="Pick another --port, or --port 0 for a free one.",
        ) from None
