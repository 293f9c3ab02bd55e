"""The click group, its error boundary and the options the commands share.

Every command module (`export`, `load`, `admin`, `sandbox`) registers its commands on `main`
and keeps to parsing options, calling one library function and printing its summary. Errors
become `Error: …` + hint + exit code in one place, `ErrorBoundary.invoke`; nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
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

F = TypeVar("F", bound=Callable[..., Any])
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


class LocalPath(click.Path):
    """A path on this machine. `s3://bucket/x` (or any other URI) is refused with exit 2 and
    one line, not made into a local folder named `s3:`: object storage is not supported yet."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path (it would mean the current folder): give one", param, ctx)
        if isinstance(value, str) and _URI.match(value):
            self.fail(
                f"{value!r} is a URI; object storage is not supported yet: give a local path",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


class Location(LocalPath):
    """A local folder, or object storage by URI (`s3://bucket/prefix`, `gs://…`, `abfs://…`):
    a URI is kept as text, a path made a Path; another scheme is refused as LocalPath does."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from insightly_etl.extract.remote import SCHEMES

        found = _URI.match(value) if isinstance(value, str) else None
        if found and found.group(0)[:-3].lower() in SCHEMES:
            return value
        scheme = value.split(":", 1)[0].lower() if isinstance(value, str) else ""
        if not found and scheme in SCHEMES and ":" in value:  # s3:/lake/x, s3:lake/x
            self.fail(f"{value!r}: a storage URI is written {scheme}://bucket/prefix", param, ctx)
        if found:
            self.fail(
                f"{value!r}: only local paths and {', '.join(s + '://' for s in SCHEMES)} "
                "locations are supported",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


@dataclass
class Context:
    api_key_file: Path | None = None
    pod: str | None = None
    api_url: str | None = None
    verbose: int = 0
    transport: Any = None  # tests: an httpx transport to the in-process sandbox (no socket)

    def settings(self) -> Settings:
        return load_settings(api_key_file=self.api_key_file, pod=self.pod, api_url=self.api_url)


# ---------------------------------------------------------------- the one error boundary


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
            _fail(str(exc), exc.hint, exc.exit_code)  # API errors: method, path and status too
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
    obj = ctx.find_object(Context)
    return obj.verbose if obj else 0


# ---------------------------------------------------------------- global options


class RedactingFilter(logging.Filter):
    """Every log line, ours or a library's (httpcore logs raw headers at DEBUG), with any
    known API key blanked out."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


def _configure_logging(verbose: int) -> None:
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            force=True,
        )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Store a global option wherever it was given: before the command or after it."""
    if value is None or (param.name == "verbose" and not value):
        return
    obj = ctx.ensure_object(Context)
    setattr(obj, param.name or "", value)
    if param.name == "verbose":
        _configure_logging(value)


GLOBAL_OPTIONS = [
    click.option(
        "--api-key-file",
        type=LocalPath(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_set_global,
        help="Read the API key from this file (else $INSIGHTLY_API_KEY). There is no --api-key: "
        "a key on the command line shows in `ps`.",
    ),
    click.option(
        "--pod",
        envvar="INSIGHTLY_POD",
        expose_value=False,
        callback=_set_global,
        help="Your account's pod, e.g. na1 or eu1 ($INSIGHTLY_POD).",
    ),
    click.option(
        "--api-url",
        envvar="INSIGHTLY_API_URL",
        expose_value=False,
        callback=_set_global,
        help="Full base URL instead of a pod, e.g. http://127.0.0.1:8765/v3.1/ ($INSIGHTLY_API_URL).",
    ),
    click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_set_global,
        help="Log requests (-v) or everything (-vv) to stderr.",
    ),
]


def global_options(func: F) -> F:
    for option in reversed(GLOBAL_OPTIONS):
        func = option(func)
    return func


@click.group(
    cls=ErrorBoundary,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@global_options
@click.version_option(package_name="insightly-etl")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Move data in and out of Insightly CRM in bulk, within its rate limits.

    The global options (--api-key-file, --pod, --api-url, -v) may come before or after the
    command."""
    obj = ctx.ensure_object(Context)
    if not obj.verbose:  # what the library warns about (a long Retry-After wait) is shown
        logging.basicConfig(level=logging.WARNING, format="Warning: %(message)s")
        _configure_logging(0)


# ---------------------------------------------------------------- talking to the API


def default_seed_dir() -> Path | None:
    """`sample_data/sandbox` in the working directory, else beside the package (a checkout);
    None means the built-in seed (the same records, generated in memory)."""
    for candidate in (
        Path("sample_data/sandbox"),
        Path(__file__).resolve().parents[2] / "sample_data/sandbox",
    ):
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class ApiOptions:
    """The options of every command that talks to the API, as one value."""

    use_sandbox: bool = False
    rate_limit: float = 10.0
    max_in_flight: int = 8
    max_requests: int | None = None
    reserve: int = 0

    def client(self, settings: Settings, transport: Any = None) -> Any:  # -> InsightlyClient
        from insightly_etl.api import InsightlyClient

        return InsightlyClient(
            settings,
            rate=self.rate_limit,
            max_in_flight=self.max_in_flight,
            max_requests=self.max_requests,
            reserve=self.reserve,
            transport=transport,
        )


API_OPTIONS = [
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
_API_NAMES = ("use_sandbox", "rate_limit", "max_in_flight", "max_requests", "reserve")


def api_options(func: F) -> F:
    """Adds the API options (and the global ones) and hands them to the command as `api`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        api = ApiOptions(**{name: kwargs.pop(name) for name in _API_NAMES})
        return func(*args, api=api, **kwargs)

    for option in reversed([*API_OPTIONS, *GLOBAL_OPTIONS]):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


@contextmanager
def api_settings(ctx: Context, use_sandbox: bool) -> Iterator[Settings]:
    """Settings for a command: from the environment, or an in-process sandbox (`--sandbox`)."""
    if not use_sandbox:
        yield ctx.settings()
        return
    from insightly_etl.sandbox import SandboxConfig, running_sandbox

    config = SandboxConfig(seed=default_seed_dir())
    with running_sandbox(config) as running:
        yield load_settings(api_key=config.api_key, api_url=running.url)


def run_with_api(ctx: Context, api: ApiOptions, go: Callable[[Any], Any]) -> Any:
    """Resolve the settings (or start the sandbox), open a client, run `go(client)`."""

    async def with_client(settings: Settings) -> Any:
        async with api.client(settings, ctx.transport) as client:
            return await go(client)

    with api_settings(ctx, api.use_sandbox) as settings:
        return asyncio.run(with_client(settings))


# ---------------------------------------------------------------- files and output


def file_options(func: F) -> F:
    """How to read a CSV or workbook."""
    options = [
        click.option(
            "--encoding",
            help="The CSV's encoding (default: detected — UTF-8 with or without BOM, else the code page whose letters spell one language: cp1252, cp1250, cp1254 or cp932).",
        ),
        click.option(
            "--delimiter",
            help="The CSV's delimiter (default: detected among , ; tab |). Use '\\t' for tab.",
        ),
        click.option("--sheet", help="XLSX: the sheet to read (default: the first)."),
        click.option(
            "--csv-dialect",
            "csv_dialect",
            type=click.Choice(["excel", "excel-eu", "plain"]),
            help="The CSV as `export --csv-dialect` writes it: excel-eu is semicolons and "
            "decimal commas (default: detected; a semicolon file reads decimal commas).",
        ),
        click.option(
            "--date-order",
            type=click.Choice(["dmy", "mdy"]),
            help="How slash dates read: dmy (31/12/2026) or mdy (12/31/2026) (default: as the "
            "file's own dates show, else refused where ambiguous).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
        type=LocalPath(dir_okay=False, path_type=Path),
        help="The mapping file (YAML). Without one, columns named like API fields map as they are (needs --object).",
    )(func)


def choice_option(
    name: str, choices: list[str], help_text: str, dest: str | None = None
) -> Callable[[F], F]:
    """`--name` taking one of `choices`, the first being the default."""
    return click.option(
        *([name, dest] if dest else [name]),
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help=help_text,
    )


def results_option(default: str) -> Callable[[F], F]:
    """`--results DIR`: where a command's result files go."""
    return click.option(
        "--results",
        "results_dir",
        type=LocalPath(file_okay=False, path_type=Path),
        help=f"Where {default}",
    )


def fields_from_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--fields-from",
        type=LocalPath(file_okay=False, path_type=Path),
        help=help_text,
    )


def echo_accounting(stats: dict[str, Any]) -> None:
    """Retries, 429s and time spent waiting, when there were any; what the client changed."""
    for notice in stats.get("notices") or ():
        click.echo(f"Note: {notice}", err=True)
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


def progress(quiet: bool) -> Any:
    from insightly_etl.progress import NullProgress, TqdmProgress

    return NullProgress() if quiet or not sys.stderr.isatty() else TqdmProgress()


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 request`, `2 requests`, `1 object type`."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


@contextmanager
def stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM set `stop` (no new request leaves); a second Ctrl-C aborts at once.
    Yields the list of signals received, for the exit code."""
    import signal

    received: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {}  # the handlers signal.signal replaced (its fallback only)

    def restore() -> None:
        for signum in wanted:
            if previous:
                signal.signal(signum, previous[signum])
            else:
                loop.remove_signal_handler(signum)

    def on_signal(signum: int) -> None:
        received.append(signum)
        click.echo(
            "\nStopping: no new request is sent; waiting for the ones in flight"
            " (Ctrl-C again to abort at once)…",
            err=True,
        )
        stop.set()
        restore()

    try:
        for signum in wanted:
            loop.add_signal_handler(signum, on_signal, signum)
    except NotImplementedError:  # Windows' event loops have no signal handlers of their own
        for signum in wanted:
            previous[signum] = signal.signal(
                signum, lambda s, _: loop.call_soon_threadsafe(on_signal, s)
            )
    try:
        yield received
    finally:
        if not received:
            restore()
