"""The `insightly-etl` command line: parse options, build objects, call one library function,
print a summary, map errors to exit codes. No logic lives here."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from insightly_etl.config import Settings, load_settings, redact
from insightly_etl.errors import InsightlyEtlError

T = TypeVar("T")

SANDBOX_OBJECTS = [
    "contacts",
    "organisations",
    "leads",
    "opportunities",
    "projects",
    "tasks",
    "events",
    "notes",
    "products",
    "pricebooks",
    "quotations",
]


def _parse_generate(value: str | None) -> dict[str, int]:
    from insightly_etl.sandbox.synth import GENERATED

    by_snake = {_snake(name): name for name in GENERATED}
    result: dict[str, int] = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        name, _, count = part.partition("=")
        key = by_snake.get(name.strip().lower()) or (
            name.strip() if name.strip() in GENERATED else None
        )
        if key is None or not count.strip().isdigit():
            raise click.BadParameter(
                f"{part!r}: expected OBJECT=N with OBJECT one of {', '.join(sorted(by_snake))}",
                param_hint="--generate",
            )
        result[key] = int(count)
    return result


def _snake(endpoint: str) -> str:
    return {"Product": "products", "Pricebook": "pricebooks", "Quotation": "quotations"}.get(
        endpoint, endpoint.lower()
    )


@dataclass
class Context:
    api_key_file: Path | None
    pod: str | None
    api_url: str | None
    verbose: int

    def settings(self) -> Settings:
        return load_settings(api_key_file=self.api_key_file, pod=self.pod, api_url=self.api_url)


def run_or_exit(func: Callable[[], T]) -> T:
    """Kept for the call sites not yet moved: the group's boundary does the mapping now."""
    return func()


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    click.echo(f"Error: {redact(message)}", err=True)
    if hint:
        click.echo(f"Hint: {redact(hint)}", err=True)
    sys.exit(code)


class ErrorBoundary(click.Group):
    """The one place where an exception becomes `Error: …` + hint + exit code. A traceback
    reaches the user only with -vv; an unexpected exception is a bug and says so."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except InsightlyEtlError as exc:
            _fail(exc.message, exc.hint, exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}", None, 74)  # EX_IOERR
        except sqlite3.Error as exc:
            _fail(f"checkpoint database: {exc}", None, 74)
        except UnicodeError as exc:
            _fail(
                f"cannot decode the input ({exc})",
                "Name the file's encoding with --encoding (e.g. utf-16, cp1252).",
                2,
            )
        except Exception as exc:
            if _verbosity(ctx) > 1:
                traceback.print_exc()
            _fail(
                f"internal error: {type(exc).__name__}: {exc}",
                "This is a bug in insightly-etl. Run again with -vv for the traceback and report it.",
                70,  # EX_SOFTWARE
            )


def _verbosity(ctx: click.Context) -> int:
    return ctx.obj.verbose if isinstance(ctx.obj, Context) else 0


@click.group(
    cls=ErrorBoundary,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the API key from this file (else $INSIGHTLY_API_KEY). There is no --api-key: "
    "a key on the command line shows in `ps`.",
)
@click.option(
    "--pod", envvar="INSIGHTLY_POD", help="Your account's pod, e.g. na1 or eu1 ($INSIGHTLY_POD)."
)
@click.option(
    "--api-url",
    envvar="INSIGHTLY_API_URL",
    help="Full base URL instead of a pod, e.g. http://127.0.0.1:8765/v3.1/ ($INSIGHTLY_API_URL).",
)
@click.option(
    "-v", "--verbose", count=True, help="Log requests (-v) or everything (-vv) to stderr."
)
@click.version_option(package_name="insightly-etl")
@click.pass_context
def main(
    ctx: click.Context,
    api_key_file: Path | None,
    pod: str | None,
    api_url: str | None,
    verbose: int,
) -> None:
    """Move data in and out of Insightly CRM in bulk, within its rate limits."""
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    ctx.obj = Context(api_key_file=api_key_file, pod=pod, api_url=api_url, verbose=verbose)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--api-key", default="sandbox", show_default=True, help="The one API key the sandbox accepts."
)
@click.option(
    "--seed",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Seed account directory  [default: sample_data/sandbox, else the built-in seed]",
)
@click.option(
    "--generate",
    help="Add N synthetic records per object on top of the seed, e.g. contacts=100000,leads=500.",
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
    type=click.Path(dir_okay=False, path_type=Path),
    help="Persist the account in this SQLite file across restarts.",
)
@click.option(
    "--if-match-status",
    type=click.Choice(["412", "400"]),
    default="412",
    show_default=True,
    help="Status for a stale If-Match ETag.",
)
@click.option(
    "--retry-after",
    type=int,
    default=None,
    help="Send Retry-After: N on burst 429s (the real API is not known to).",
)
@click.option(
    "--put-customfields",
    type=click.Choice(["merge", "replace"]),
    default="merge",
    show_default=True,
    help="Whether a PUT keeps (merge) or erases (replace) the custom fields it leaves out.",
)
@click.option(
    "--deny",
    default="",
    help="Comma-separated objects answering 403, e.g. Leads,Product (a plan or permission gap).",
)
def sandbox(
    host: str,
    port: int,
    api_key: str,
    seed: Path | None,
    generate: str | None,
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
    deny: str,
) -> None:
    """Serve a local Insightly-compatible API at http://HOST:PORT/v3.1/ (Ctrl-C stops it)."""
    from insightly_etl.sandbox import SandboxConfig, serve

    config = SandboxConfig(
        api_key=api_key,
        seed=seed or default_seed_dir(),
        generate=_parse_generate(generate),
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
        deny=frozenset(d.strip() for d in deny.split(",") if d.strip()),
    )
    click.echo(
        f"Insightly sandbox on http://{host}:{port}/v3.1/ (API key: the one given by --api-key)",
        err=True,
    )
    serve(config, host=host, port=port)


def default_seed_dir() -> Path | None:
    """`sample_data/sandbox` in the working directory, else beside the package (a checkout);
    None means the built-in seed (the same records, generated in memory)."""
    for candidate in (
        Path("sample_data/sandbox"),
        Path(__file__).resolve().parent.parent / "sample_data/sandbox",
    ):
        if candidate.is_dir():
            return candidate
    return None


@contextmanager
def api_settings(ctx: Context, use_sandbox: bool, **sandbox_options: Any) -> Iterator[Settings]:
    """Settings for a command: from the environment, or an in-process sandbox (`--sandbox`)."""
    if not use_sandbox:
        yield ctx.settings()
        return
    from insightly_etl.sandbox import SandboxConfig, running_sandbox

    config = SandboxConfig(seed=default_seed_dir(), **sandbox_options)
    with running_sandbox(config) as running:
        yield load_settings(api_key=config.api_key, api_url=running.url)


def run_with_api(ctx: Context, use_sandbox: bool, go: Callable[[Settings], Any]) -> Any:
    """Resolve the settings (or start the sandbox) and run the coroutine, errors mapped."""

    def body() -> Any:
        with api_settings(ctx, use_sandbox) as settings:
            return asyncio.run(go(settings))

    return run_or_exit(body)


F = TypeVar("F", bound=Callable[..., Any])


def api_options(func: F) -> F:
    """Options of every command that talks to the API."""
    options = [
        click.option(
            "--sandbox",
            "use_sandbox",
            is_flag=True,
            help="Run against an in-process sandbox seeded from sample_data/sandbox.",
        ),
        click.option(
            "--rate-limit",
            default=10.0,
            show_default=True,
            type=click.FloatRange(0.1, 100),
            help="Requests/second ceiling (Insightly: 10 on every plan).",
        ),
        click.option(
            "--max-in-flight",
            default=8,
            show_default=True,
            type=click.IntRange(1, 64),
            help="Requests in flight at once.",
        ),
        click.option(
            "--max-requests",
            type=click.IntRange(1),
            help="Spend at most this many requests in this run.",
        ),
        click.option(
            "--reserve",
            default=0,
            show_default=True,
            type=click.IntRange(0),
            help="Leave this many of today's requests for other integrations.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_client(
    settings: Settings,
    rate_limit: float,
    max_in_flight: int,
    max_requests: int | None,
    reserve: int,
) -> Any:
    from insightly_etl.api import InsightlyClient

    return InsightlyClient(
        settings,
        rate=rate_limit,
        max_in_flight=max_in_flight,
        max_requests=max_requests,
        reserve=reserve,
    )


def _echo_accounting(stats: dict[str, Any]) -> None:
    """Retries, 429s and time spent waiting, when there were any."""
    if stats.get("retries") or stats.get("throttled_429") or stats.get("transport_errors"):
        errors = ", ".join(
            f"{n} {kind}" for kind, n in (stats.get("transport_errors") or {}).items()
        )
        click.echo(
            f"Requests retried: {stats['retries']} ({stats['throttled_429']} throttled by 429"
            + (f"; transport errors: {errors}" if errors else "")
            + f"); waited {stats['waited_backoff_s']}s in backoff",
            err=True,
        )


def _progress(quiet: bool) -> Any:
    from insightly_etl.progress import NullProgress, TqdmProgress

    return NullProgress() if quiet or not sys.stderr.isatty() else TqdmProgress()


@main.command()
@click.argument("objects", nargs=-1)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the files and _manifest.json.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="File format.",
)
@click.option(
    "--incremental",
    is_flag=True,
    help="Fetch only records changed since the last export in --out and merge them in.",
)
@click.option(
    "--since",
    help="Fetch records changed after this UTC time (2026-11-01T00:00:00Z) and merge them in.",
)
@click.option(
    "--brief",
    is_flag=True,
    help="Leave out nested arrays and custom fields (brief=true): smaller, faster.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, no summary.")
@api_options
@click.pass_obj
def export(
    ctx: Context,
    objects: tuple[str, ...],
    out_dir: Path,
    fmt: str,
    incremental: bool,
    since: str | None,
    brief: bool,
    quiet: bool,
    use_sandbox: bool,
    rate_limit: float,
    max_in_flight: int,
    max_requests: int | None,
    reserve: int,
) -> None:
    """Export OBJECTS (default: every object type) to typed Parquet or CSV files in --out.

    Object types: contacts organisations leads opportunities projects tasks events notes
    pipelines pipeline_stages users lead_sources lead_statuses opportunity_categories
    project_categories task_categories products pricebooks quotations countries currencies
    custom_fields. One the account cannot read (HTTP 403/404) is skipped with a warning.
    """
    from insightly_etl.extract import ExportOptions, extract_objects
    from insightly_etl.extract.export import parse_since, resolve_objects

    if incremental and since:
        raise click.UsageError("--incremental and --since exclude each other")
    options = ExportOptions(
        out_dir=out_dir,
        objects=run_or_exit(lambda: resolve_objects(list(objects))),
        fmt=fmt,
        incremental=incremental,
        since=run_or_exit(lambda: parse_since(since)) if since else None,
        brief=brief,
    )

    async def go(settings: Settings) -> Any:
        async with make_client(
            settings, rate_limit, max_in_flight, max_requests, reserve
        ) as client:
            return await extract_objects(client, options, _progress(quiet))

    result = run_with_api(ctx, use_sandbox, go)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not quiet:
        exported = [o for o in result.objects if o.status != "skipped"]
        rows = sum(o.rows for o in exported)
        quota = (
            f"{result.quota_remaining:,} of {result.quota_limit:,}"
            if result.quota_limit
            else "unknown"
        )
        click.echo(
            f"Exported {len(exported)} object types, {rows:,} rows, {result.requests:,} requests "
            f"in {result.seconds:.1f}s to {out_dir}/ (quota left today: {quota})",
            err=True,
        )
        _echo_accounting(result.stats)


# ---------------------------------------------------------------- import, part 1: validation


def mapping_options(func: F) -> F:
    """--mapping and --object, for the commands that read a file through a mapping."""
    func = click.option(
        "--object",
        "object_name",
        help="The object type to import into (overrides the mapping's object:).",
    )(func)
    return click.option(
        "--mapping",
        "mapping_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The mapping file (YAML). Without one, columns named like API fields map as they are (needs --object).",
    )(func)


def file_options(func: F) -> F:
    options = [
        click.option(
            "--encoding",
            help="The CSV's encoding (default: detected — UTF-8 with or without BOM, else Windows-1252).",
        ),
        click.option(
            "--delimiter",
            help="The CSV's delimiter (default: detected among , ; tab |). Use '\\t' for tab.",
        ),
        click.option("--sheet", help="XLSX: the sheet to read (default: the first)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _facts(
    ctx: Context, mapping: Any, fields_from: Path | None, use_sandbox: bool, api: dict[str, Any]
) -> Any:
    """Definitions and lookups: from an export directory (no request) or the API."""
    from insightly_etl.load.account import facts_from_api, facts_from_export

    if fields_from is not None:
        return run_or_exit(lambda: facts_from_export(fields_from, mapping))

    async def go(settings: Settings) -> Any:
        async with make_client(settings, **api) as client:
            return await facts_from_api(client, mapping)

    return run_with_api(ctx, use_sandbox, go)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@mapping_options
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the rejected rows  [default: FILE.rejects.csv]",
)
@click.option(
    "--fields-from",
    type=click.Path(file_okay=False, path_type=Path),
    help="Take field definitions and lookups from this export directory: no API request.",
)
@file_options
@api_options
@click.pass_obj
def validate(
    ctx: Context,
    file: Path,
    mapping_file: Path | None,
    object_name: str | None,
    rejects: Path | None,
    fields_from: Path | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    use_sandbox: bool,
    rate_limit: float,
    max_in_flight: int,
    max_requests: int | None,
    reserve: int,
) -> None:
    """Check every row of FILE against the account's fields, without writing anything.

    Exit 0: every row is valid; 1: some rows were rejected (see the rejects file); 2: the file
    or the mapping cannot be used.
    """
    from insightly_etl.load.mapping import read_mapping
    from insightly_etl.load.readers import read_table
    from insightly_etl.load.report import (
        default_rejects_path,
        error_groups,
        rejected_count,
        write_rejects,
    )
    from insightly_etl.load.validate import validate_table

    mapping = run_or_exit(lambda: read_mapping(mapping_file, object_name=object_name))
    table = run_or_exit(
        lambda: read_table(file, encoding=encoding, delimiter=delimiter, sheet=sheet)
    )
    api = {
        "rate_limit": rate_limit,
        "max_in_flight": max_in_flight,
        "max_requests": max_requests,
        "reserve": reserve,
    }
    facts = _facts(ctx, mapping, fields_from, use_sandbox, api)
    result = run_or_exit(lambda: validate_table(table, mapping, facts))
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    rejected = rejected_count(result)
    total = result.rows + result.bad_rows
    how = f" ({table.encoding}, {table.delimiter!r} delimited)" if table.encoding else ""
    click.echo(
        f"{file.name}: {total:,} rows read{how}: {total - rejected:,} valid, {rejected:,} rejected"
    )
    for warning in result.update_only_warnings():
        click.echo(f"Warning: {warning}", err=True)
    groups = error_groups(result)
    if groups:
        click.echo(f"  {'column':<24} {'kind':<9} {'count':>7}  example")
        for g in groups:
            click.echo(
                f"  {g.column:<24} {g.kind:<9} {g.count:>7,}  {table.unit} {g.example_line}: {g.example}"
            )
    if rejected:
        path = rejects or default_rejects_path(file)
        write_rejects(result, path)
        click.echo(f"Rejected rows, with their {table.unit} numbers and errors: {path}")
        sys.exit(1)


@main.command()
@click.argument("object_name", metavar="OBJECT")
@click.option("--all", "show_all", is_flag=True, help="Also list read-only fields.")
@click.option(
    "--fields-from",
    type=click.Path(file_okay=False, path_type=Path),
    help="Take custom-field definitions from this export directory: no API request.",
)
@api_options
@click.pass_obj
def fields(
    ctx: Context,
    object_name: str,
    show_all: bool,
    fields_from: Path | None,
    use_sandbox: bool,
    rate_limit: float,
    max_in_flight: int,
    max_requests: int | None,
    reserve: int,
) -> None:
    """List the fields of OBJECT an import can write: API name, label, type, required, max length, options."""
    from insightly_etl.api.registry import OBJECTS
    from insightly_etl.load.fields import field_specs
    from insightly_etl.load.mapping import read_mapping

    mapping = run_or_exit(lambda: read_mapping(None, object_name=object_name))
    api = {
        "rate_limit": rate_limit,
        "max_in_flight": max_in_flight,
        "max_requests": max_requests,
        "reserve": reserve,
    }
    facts = _facts(ctx, mapping, fields_from, use_sandbox, api)
    specs = field_specs(OBJECTS[mapping.object], facts.definitions)
    click.echo(f"{'field':<28} {'label':<26} {'type':<13} {'req':<4} {'max':>5}  options")
    for spec in specs.values():
        if not spec.writable and not show_all:
            continue
        kind = spec.api_type + ("" if spec.writable else " (read-only)")
        req = "yes" if spec.required else ""
        options = ", ".join(spec.options)
        click.echo(
            f"{spec.name:<28} {spec.label[:26]:<26} {kind:<13} {req:<4} {spec.max_length or '':>5}  {options}"
        )


@main.group()
def mapping() -> None:
    """Mapping files: which spreadsheet column goes to which Insightly field."""


@mapping.command("draft")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--object", "object_name", required=True, help="The object type the file holds.")
@click.option(
    "--fields-from",
    type=click.Path(file_okay=False, path_type=Path),
    help="Take custom-field definitions from this export directory: no API request.",
)
@file_options
@api_options
@click.pass_obj
def mapping_draft(
    ctx: Context,
    file: Path,
    object_name: str,
    fields_from: Path | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    use_sandbox: bool,
    rate_limit: float,
    max_in_flight: int,
    max_requests: int | None,
    reserve: int,
) -> None:
    """Print a starting mapping for FILE: headers matched to field names and labels."""
    from insightly_etl.api.registry import OBJECTS
    from insightly_etl.load.draft import draft_mapping
    from insightly_etl.load.fields import field_specs
    from insightly_etl.load.mapping import read_mapping
    from insightly_etl.load.readers import read_table

    target = run_or_exit(lambda: read_mapping(None, object_name=object_name))
    table = run_or_exit(
        lambda: read_table(file, encoding=encoding, delimiter=delimiter, sheet=sheet)
    )
    api = {
        "rate_limit": rate_limit,
        "max_in_flight": max_in_flight,
        "max_requests": max_requests,
        "reserve": reserve,
    }
    facts = _facts(ctx, target, fields_from, use_sandbox, api)
    click.echo(
        draft_mapping(table, target.object, field_specs(OBJECTS[target.object], facts.definitions)),
        nl=False,
    )


# ---------------------------------------------------------------- import, part 2: writes


def _print_quota_plan(plan: Any) -> None:
    left = f"{plan.remaining:,}" if plan.remaining is not None else "unknown"
    click.echo(
        f"Plan: {plan.creates:,} to create, {plan.updates:,} to update, {plan.unchanged:,} unchanged (no request), "
        f"{plan.rejected:,} rejected, {plan.duplicates:,} duplicate, {plan.skipped:,} skipped, {plan.failed:,} failed"
        + (f"; {plan.done_before:,} done by earlier runs" if plan.done_before else ""),
        err=True,
    )
    click.echo(
        f"Requests: {plan.requests_needed:,} needed ({plan.planning_requests:,} spent on planning, by {plan.strategy}); "
        f"{left} left today, reserve {plan.reserve:,}; this run sends up to {plan.this_run:,}, about {plan.seconds:,.0f}s.",
        err=True,
    )
    if plan.examples:
        click.echo("Changes (every one is in NAME.plan.csv):", err=True)
        for example in plan.examples:
            click.echo(f"  {example}", err=True)


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@mapping_options
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The resumable state of this import  [default: FILE.checkpoint.sqlite]",
)
@click.option(
    "--results",
    "results_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where NAME.success.csv, NAME.errors.csv … go  [default: beside FILE]",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and plan (reads only), print the quota plan, write NAME.plan.csv (every field's value now and after); send no write and leave the checkpoint as it was.",
)
@click.option(
    "--batch-size",
    default=200,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Rows per batch (a batch with updates first re-reads what changed since planning).",
)
@click.option(
    "--on-match",
    type=click.Choice(["update", "skip", "error"]),
    default="update",
    show_default=True,
    help="What to do with a row whose match key finds an existing record.",
)
@click.option(
    "--create-missing/--no-create-missing",
    default=True,
    show_default=True,
    help="Create a record for a row whose match key finds none.",
)
@click.option(
    "--skip-duplicates",
    is_flag=True,
    help="Without a match key: skip rows Insightly's own importer would call duplicates of existing records.",
)
@click.option(
    "--on-duplicate",
    type=click.Choice(["error", "first", "last"]),
    default="error",
    show_default=True,
    help="Rows of the file sharing a match key with different values: send none and report the "
    "group (error), or send the first or the last of them. Identical rows are sent once.",
)
@click.option(
    "--on-conflict",
    type=click.Choice(["skip", "overwrite"]),
    default="skip",
    show_default=True,
    help="A file with DATE_UPDATED_UTC (an edited export) whose record changed in Insightly "
    "since: leave the record alone and report the conflict (skip), or overwrite it.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@file_options
@api_options
@click.pass_obj
def import_(
    ctx: Context,
    file: Path,
    mapping_file: Path | None,
    object_name: str | None,
    checkpoint: Path | None,
    results_dir: Path | None,
    dry_run: bool,
    batch_size: int,
    on_match: str,
    create_missing: bool,
    skip_duplicates: bool,
    on_duplicate: str,
    on_conflict: str,
    quiet: bool,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    use_sandbox: bool,
    rate_limit: float,
    max_in_flight: int,
    max_requests: int | None,
    reserve: int,
) -> None:
    """Create and update records from FILE within the daily quota; run again to resume.

    Exit 0: every row created, updated or unchanged; 1: some rows rejected or failed (see
    NAME.errors.csv); 75: stopped for quota, or another run holds the checkpoint — run the
    same command later to continue; 2: a bad file, mapping or option; 130: interrupted
    (Ctrl-C); 143: terminated (SIGTERM).
    """
    import signal

    from insightly_etl.load.importer import ImportOptions, load_file
    from insightly_etl.load.mapping import read_mapping
    from insightly_etl.load.readers import read_table

    mapping = run_or_exit(lambda: read_mapping(mapping_file, object_name=object_name))
    table = run_or_exit(
        lambda: read_table(file, encoding=encoding, delimiter=delimiter, sheet=sheet)
    )
    options = ImportOptions(
        file=file,
        mapping_file=mapping_file,
        checkpoint=checkpoint,
        results_dir=results_dir,
        dry_run=dry_run,
        batch_size=batch_size,
        on_match=on_match,
        create_missing=create_missing,
        skip_duplicates=skip_duplicates,
        on_duplicate=on_duplicate,
        on_conflict=on_conflict,
    )

    received: list[int] = []  # the signal that stopped the run, for its exit code

    async def go(settings: Settings) -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            received.append(signum)
            click.echo(
                "\nStopping: no new request is sent; waiting for the ones in flight"
                " (Ctrl-C again to abort at once)…",
                err=True,
            )
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C aborts at once
            loop.remove_signal_handler(signal.SIGTERM)

        loop.add_signal_handler(signal.SIGINT, on_signal, signal.SIGINT)
        loop.add_signal_handler(signal.SIGTERM, on_signal, signal.SIGTERM)
        try:
            async with make_client(
                settings, rate_limit, max_in_flight, max_requests, reserve
            ) as client:
                return await load_file(
                    client,
                    options,
                    table,
                    mapping,
                    stop=stop,
                    progress=_progress(quiet),
                    announce=_print_quota_plan,
                )
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)

    result = run_with_api(ctx, use_sandbox, go)
    if result.since_last_run:
        click.echo(f"Since the last run: {result.since_last_run}.", err=True)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    c = result.counts
    quota = (
        f"{result.quota_remaining:,} of {result.quota_limit:,}" if result.quota_limit else "unknown"
    )
    click.echo(
        f"{file.name} -> {mapping.object}: {c['created']:,} created, {c['updated']:,} updated, "
        f"{c['unchanged']:,} unchanged, {c['rejected']:,} rejected, {c['duplicate']:,} duplicate, "
        f"{c['skipped']:,} skipped, {c['failed']:,} failed"
        + (f", {c['left']:,} left" if c["left"] else "")
        + f"; {result.requests:,} requests; quota left today {quota}"
    )
    if result.files:
        click.echo("Results: " + ", ".join(str(p) for p in result.files))
    _echo_accounting(result.stats)
    if result.stopped == "quota":
        click.echo(f"Stopped: {result.stop_reason}", err=True)
        if result.stop_hint:
            click.echo(f"Hint: {result.stop_hint}", err=True)
        click.echo(
            f"{c['left']:,} rows left. Run the same command again to continue (the daily quota frees up within 24 hours).",
            err=True,
        )
    elif result.stopped == "interrupted":
        click.echo(
            f"Interrupted: {c['left']:,} rows left; run the same command again to continue.",
            err=True,
        )
        if received and received[0] == signal.SIGTERM:
            sys.exit(143)  # 128 + SIGTERM, as a shell reports a process it terminated
    sys.exit(result.exit_code)


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read only: list in NAME.undo.csv what undo would delete, restore or leave alone.",
)
@click.option(
    "--results",
    "results_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where NAME.undo.csv goes  [default: beside CHECKPOINT]",
)
@api_options
@click.pass_obj
def undo(
    ctx: Context,
    checkpoint: Path,
    dry_run: bool,
    results_dir: Path | None,
    use_sandbox: bool,
    rate_limit: float,
    max_in_flight: int,
    max_requests: int | None,
    reserve: int,
) -> None:
    """Reverse the import recorded in CHECKPOINT: delete the records it created and give back
    the values it overwrote — only where nobody changed them since (those are listed as
    conflicts). Resumable: run it again after a stop.

    Exit 0: undone; 1: some records or fields left alone as conflicts, or refused (see
    NAME.undo.csv); 75: stopped for quota — run it again later; 130: interrupted.
    """
    import signal

    from insightly_etl.load.undo import undo_import

    async def go(settings: Settings) -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            async with make_client(
                settings, rate_limit, max_in_flight, max_requests, reserve
            ) as client:
                return await undo_import(
                    client, checkpoint, dry_run=dry_run, results_dir=results_dir, stop=stop
                )
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    result = run_with_api(ctx, use_sandbox, go)
    c = result.counts
    click.echo(
        f"{checkpoint.name}: {c['deleted']:,} created records deleted, {c['restored']:,} records "
        f"restored, {c['conflict']:,} left alone as conflicts, {c['gone']:,} already gone, "
        f"{c['failed']:,} failed"
        + (f", {c['left']:,} left" if c["left"] else "")
        + f"; {result.requests:,} requests"
        + (" (dry run: nothing changed)" if dry_run else "")
    )
    click.echo("Results: " + ", ".join(str(p) for p in result.files))
    if result.stopped == "quota":
        click.echo(f"Stopped: {result.stop_reason}", err=True)
        click.echo("Run the same command again to continue.", err=True)
    elif result.stopped == "interrupted":
        click.echo("Interrupted; run the same command again to continue.", err=True)
    sys.exit(result.exit_code)


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def status(checkpoint: Path) -> None:
    """Show an import's progress from its checkpoint file: done, failed and left, by action."""
    from insightly_etl.load.checkpoint import Checkpoint

    cp = Checkpoint.read_only(checkpoint)
    try:
        click.echo(
            f"{checkpoint}: {cp.meta('source')} -> {cp.meta('object')} (started {cp.meta('created_utc')} UTC)"
        )
        click.echo(f"  {'action':<10} {'state':<10} {'rows':>8}")
        for (action, state), n in sorted(
            cp.counts().items(), key=lambda kv: (kv[0][1], kv[0][0] or "")
        ):
            click.echo(f"  {action or '-':<10} {state:<10} {n:>8,}")
        runs = cp.runs()
        total = sum(r["requests"] or 0 for r in runs)
        click.echo(f"  {len(runs)} run(s), {total:,} requests in all")
        if runs:
            last = runs[-1]
            click.echo(
                f"  last run: {last['started_utc']} -> {last['finished_utc'] or '(did not finish)'}, {last['requests']} requests, {last['outcome'] or 'killed or running'}"
            )
        if any(state in ("in_flight", "unknown") for _, state in cp.counts()):
            click.echo(
                "  in_flight / unknown: writes sent whose answer never came; the next run finds "
                "out whether each happened before sending anything again."
            )
        undone = cp.undo_summary()
        if undone:
            click.echo(
                "  undo: " + ", ".join(f"{n:,} {state}" for state, n in sorted(undone.items()))
            )
    finally:
        cp.close()


if __name__ == "__main__":
    main()
