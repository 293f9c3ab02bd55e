"""The click group, its error boundary and the options the commands share.

Every command module (`export`, `load`, `admin`, `sandbox`) registers its commands on `main`
and keeps to parsing options, calling one library function and printing its summary. Errors
become `Error: …` + hint + exit code in one place, `ErrorBoundary.invoke`; nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import io
import json
import logging
import os
import re
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from insightly_etl.config import ENV_URL, Settings, load_settings, redact
from insightly_etl.errors import KEY_HINT, InsightlyEtlError, StopReason
from insightly_etl.files import PARTIAL_SUFFIX
from insightly_etl.summary import RunSummary, utc_now, utc_text

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
    summary_json: Path | None = None  # --summary-json: where the run summary goes
    log_format: str = "text"  # --log-format json: stderr is one JSON object per line
    summary: RunSummary | None = None  # what the command did, filled in as it goes
    account_entry: Any = None  # --accounts FILE --account NAME: the one entry (AccountEntry)
    typed: set[str] = field(default_factory=set)  # global options given on the command line

    def settings(self) -> Settings:
        if self.account_entry is not None:  # an entry of accounts.yaml: its key, pod or URL
            return self.account_entry.settings()
        if "pod" in self.typed and "api_url" not in self.typed:
            # a pod typed wins over a URL from the environment (a URL wins over a pod when
            # both come from the same place)
            environ = {k: v for k, v in os.environ.items() if k != ENV_URL}
            return load_settings(api_key_file=self.api_key_file, pod=self.pod, environ=environ)
        return load_settings(api_key_file=self.api_key_file, pod=self.pod, api_url=self.api_url)


# ---------------------------------------------------------------- the one error boundary


def _published_name(name: str) -> str:
    """A file as the user knows it: `contacts.parquet`, not the `.contacts.parquet.partial`
    it is written as until it is whole."""
    path = Path(name)
    if path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX):
        return str(path.with_name(path.name[1 : -len(PARTIAL_SUFFIX)]))
    return name


def _fail(
    message: str, hint: str | None, code: int, reason: StopReason = StopReason.ERROR
) -> NoReturn:
    obj = _context()
    if obj is not None and obj.summary is not None:
        obj.summary.error, obj.summary.stop_reason = redact(message), reason
    if obj is not None and obj.log_format == "json":
        log_json("error", message, hint=hint, exit_code=code)
    else:
        click.echo(f"Error: {redact(message)}", err=True)
        if hint:
            click.echo(f"Hint: {redact(hint)}", err=True)
    sys.exit(code)


def _said_as_the_end(code: int) -> None:
    """click shows a usage error next, and the run ends: under --log-format json its line
    carries the exit code, as every other error's that ends a run."""
    if isinstance(sys.stderr, JsonLines):
        sys.stderr.exit_code = code


def _context() -> Context | None:
    ctx = click.get_current_context(silent=True)
    return ctx.find_object(Context) if ctx else None


class _Unbroken(io.TextIOBase):
    """stderr whose reader went away (`insightly-etl … 2>&1 | head -1`): the rest of what is
    said goes nowhere, and the run ends with its own exit code. A write that failed for the
    closed pipe made click end every such run with exit 1."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self.stream.write(text))
        except BrokenPipeError:
            self._to_nowhere()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._to_nowhere()

    def _to_nowhere(self) -> None:
        _to_nowhere(self.stream)

    @property
    def encoding(self) -> Any:  # type: ignore[override]  # tqdm draws its bars by it
        return getattr(self.stream, "encoding", None)

    @property
    def errors(self) -> Any:  # type: ignore[override]
        return getattr(self.stream, "errors", None)

    def fileno(self) -> int:
        return int(self.stream.fileno())

    def isatty(self) -> bool:
        return bool(self.stream.isatty())

    def writable(self) -> bool:
        return True


def _to_nowhere(stream: Any) -> None:
    """What is still written to `stream`, whose reader went away, goes to the null device (no
    second error at the exit flush)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


class ErrorBoundary(click.Group):
    """The one place where an exception becomes `Error: …` + hint + exit code. A traceback
    reaches the user only with -vv; an unexpected exception is a bug and says so."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if sys.stderr is not None and not isinstance(sys.stderr, _Unbroken):  # None: 2>&-
            sys.stderr = _Unbroken(sys.stderr)
        return super().main(*args, **kwargs)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:  # the group's own options: refused as they parse
            _said_as_the_end(exc.exit_code)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        code: int | str | None = 1
        ran = True  # not a --help or --version, which print and run nothing: no summary
        try:
            result = self._invoke(ctx)
            code = 0
            return result
        except SystemExit as exc:
            code = exc.code
            raise
        except click.exceptions.Exit as exc:
            code, ran = exc.exit_code, exc.exit_code != 0
            raise
        except click.ClickException as exc:
            code = exc.exit_code
            _name_the_envvar(exc)
            _said_as_the_end(code)
            obj = ctx.find_object(Context)
            if obj is not None and obj.summary is not None:
                obj.summary.error = exc.format_message()
            raise
        finally:
            if ran:
                _write_summary(ctx, code)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except InsightlyEtlError as exc:
            # API errors: method, path and status too
            hint, obj = exc.hint, _context()
            if hint == KEY_HINT and obj is not None and obj.account_entry is not None:
                hint = obj.account_entry.key_hint  # its key and pod come from accounts.yaml
            _fail(str(exc), hint, exc.exit_code, exc.stop_reason)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)  # the summary says interrupted (_write_summary)
        except BrokenPipeError:  # `validate … | head -1`: the reader has all it wanted
            _to_nowhere(sys.stdout)
            sys.exit(141)  # as a shell reports a command ended by SIGPIPE: 128 + 13
        except OSError as exc:
            where = f"{_published_name(str(exc.filename))}: " if exc.filename else ""
            hint = (
                "Free some space (or write elsewhere), then run again: nothing half-written is "
                "kept."
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else None
            )
            _fail(f"{where}{exc.strerror or exc}", hint, 74)  # EX_IOERR
        except sqlite3.Error as exc:
            full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            hint = (
                "Free some space on the checkpoint's disk (for a dry run, in the temporary "
                f"folder, {tempfile.gettempdir()}, TMPDIR: its copy of the checkpoint is "
                "there), then run again: what the checkpoint holds is as its last transaction "
                "left it."
                if full
                else None
            )
            _fail(f"checkpoint database: {exc}", hint, 74)
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


def _name_the_envvar(exc: click.ClickException) -> None:
    """`Invalid value for '--format' (from INSIGHTLY_ETL_EXPORT_FORMAT)`: a value nobody typed
    on the command line says where it came from."""
    if not isinstance(exc, click.BadParameter) or exc.param is None or exc.ctx is None:
        return
    param, name = exc.param, exc.param.name or ""
    source = exc.ctx.get_parameter_source(name)
    if source is click.core.ParameterSource.ENVIRONMENT and isinstance(param.envvar, str):
        flag = param.opts[0] if param.opts else name
        exc.param_hint = f"'{flag}' (from {param.envvar})"


def _write_summary(ctx: click.Context, code: int | str | None) -> None:
    """--summary-json: the run's summary, however it ended (an error included)."""
    obj = ctx.find_object(Context)
    if obj is None or obj.summary is None or obj.summary_json is None:
        return
    summary = obj.summary
    summary.exit_code = code if isinstance(code, int) else (0 if code is None else 1)
    summary.finished_utc = utc_now()
    if summary.exit_code == 0:
        summary.stop_reason = summary.error = None
    elif summary.exit_code in (130, 143) and summary.stop_reason is None:
        summary.stop_reason = StopReason.INTERRUPTED  # Ctrl-C or SIGTERM
    elif summary.exit_code != 1 and summary.stop_reason is None:
        # a usage error click raised (2) or any other end before the work was done; exit 1
        # alone is a run that went to its end with rows a person must look at
        summary.stop_reason = StopReason.ERROR
    try:
        if not _is_summary_or_free(Path(obj.summary_json)):  # the run made a file there
            raise OSError(errno.EEXIST, "the run wrote another file there; left as it is")
        summary.write(obj.summary_json)
    except OSError as exc:
        click.echo(f"Error: cannot write the summary {obj.summary_json}: {exc.strerror}", err=True)
        if not code:  # the run's own outcome wins; a run that did its work still failed this
            sys.exit(74)


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


def rows_text(counts: dict[str, int]) -> str:
    """An import's rows by outcome, in the words of its summary line and of `status`: each
    row counted once, by its last write."""
    from insightly_etl.load.states import OUTCOMES  # the rows' outcomes, in their order

    always = OUTCOMES[: OUTCOMES.index("failed") + 1]  # then those said only when there are
    text = ", ".join(f"{counts.get(k, 0):,} {k}" for k in always)
    if counts.get("not_applied"):
        text += f", {counts['not_applied']:,} not applied"
    return text + (f", {counts['left']:,} left" if counts.get("left") else "")


def json_line(level: str, message: str, **extra: Any) -> str:
    """One log line of `--log-format json` (insightly_etl/schemas/log-line.schema.json)."""
    line = {"ts": utc_now(), "level": level, "message": redact(message)}
    line.update(
        {k: redact(v) if isinstance(v, str) else v for k, v in extra.items() if v is not None}
    )
    return json.dumps(line, ensure_ascii=False)


def log_json(level: str, message: str, **extra: Any) -> None:
    """One JSON line on stderr, past JsonLines (which wraps every other line it is given)."""
    stream = sys.stderr.stream if isinstance(sys.stderr, JsonLines) else sys.stderr
    stream.write(json_line(level, message, **extra) + "\n")
    stream.flush()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json_line(record.levelname.lower(), record.getMessage(), logger=record.name)


class JsonLines(io.TextIOBase):
    """stderr under `--log-format json`: each line the commands write (a summary, a warning,
    a hint) leaves as a JSON object, so a reader parses every line the same way."""

    _LEVELS = (("Error:", "error"), ("Warning:", "warning"), ("Hint:", "info"), ("Note:", "info"))

    def __init__(self, stream: Any) -> None:
        self.stream, self._partial = stream, ""
        self.exit_code: int | None = None  # a usage error's: its Error: line says it

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:  # never passed through as it is: server text could forge a line
            if line.strip():
                found = next(((p, lv) for p, lv in self._LEVELS if line.startswith(p)), None)
                prefix, level = found or ("", "info")
                extra = {"exit_code": self.exit_code} if level == "error" and self.exit_code else {}
                self.stream.write(json_line(level, line[len(prefix) :].strip(), **extra) + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def _configure_logging(verbose: int, log_format: str = "text") -> None:
    handlers = logging.getLogger().handlers
    was_json = any(isinstance(h.formatter, JsonFormatter) for h in handlers)
    if verbose or log_format == "json":
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            force=True,
        )
    elif was_json:  # text typed after the command, json from the environment: as main sets it
        logging.basicConfig(level=logging.WARNING, format="Warning: %(message)s", force=True)
    for handler in logging.getLogger().handlers:
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
            stream = getattr(handler, "stream", None)
            if isinstance(stream, JsonLines) and isinstance(handler, logging.StreamHandler):
                handler.setStream(stream.stream)  # a JSON line already: not wrapped again
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _is_summary_or_free(path: Path) -> bool:
    """--summary-json replaces its file: only an earlier summary (or nothing, a pipe, a
    device), never another file given there by mistake, such as the export's
    `_manifest.json` or the checkpoint the run itself makes there."""
    if not path.is_file() or path.stat().st_size == 0:
        return True
    try:
        data = json.loads(path.read_bytes())  # a regular file: a summary, or what it replaces
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "command" in data and "exit_code" in data


def _refuse_if_not_a_summary(path: Path) -> None:
    if not _is_summary_or_free(path):
        raise click.BadParameter(
            f"{path} is a file, but not a run summary: it would be replaced; name another "
            "(a summary's own file is replaced each run)",
            param_hint="'--summary-json'",
        )


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Store a global option wherever it was given: before the command or after it."""
    if value is None or (param.name == "verbose" and not value):
        return
    obj = ctx.ensure_object(Context)
    name = param.name or ""
    if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
        obj.typed.add(name)
    elif name in obj.typed:
        # typed before the command: the command's own copy of the option, filled from the
        # environment, must not take its place (`--api-url SANDBOX export …` reached the
        # environment's URL, perhaps production's)
        return
    # the environment's path is checked by the command's own copy of the option, which a
    # path typed after the command replaces (the group's copy refused it before that)
    from_group_env = ctx.parent is None and name not in obj.typed
    if name == "summary_json" and not from_group_env:
        _refuse_if_not_a_summary(Path(value))
    setattr(obj, name, value)
    if param.name == "log_format" and value == "json" and not isinstance(sys.stderr, JsonLines):
        sys.stderr = JsonLines(sys.stderr)  # restored when the process (or CliRunner) ends
    elif param.name == "log_format" and value == "text" and isinstance(sys.stderr, JsonLines):
        sys.stderr = sys.stderr.stream  # text typed after the command, json from the environment
    if param.name in ("verbose", "log_format"):
        _configure_logging(obj.verbose, obj.log_format)


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
        "--log-format",
        type=click.Choice(["text", "json"]),
        expose_value=False,
        callback=_set_global,
        is_eager=True,  # before the others: an error in one is written in its format
        help="json: everything written to stderr (logs, warnings, errors, the summary) is "
        "one JSON object per line, keys blanked out  [default: text]",
    ),
    click.option(
        "--summary-json",
        type=LocalPath(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_set_global,
        is_eager=True,  # before the others: a summary is written when one of them is refused
        help="Write the run's summary here as JSON when it ends, however it ends: counts per "
        "object, requests, 429s, quota left, stop reason, exit code, retry_not_before.",
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

    The global options (--api-key-file, --pod, --api-url, --log-format, --summary-json, -v)
    may come before or after the command."""
    obj = ctx.ensure_object(Context)
    obj.summary = RunSummary(command=ctx.invoked_subcommand or "")
    if not obj.verbose:  # what the library warns about (a long Retry-After wait) is shown
        logging.basicConfig(level=logging.WARNING, format="Warning: %(message)s")
        _configure_logging(0, obj.log_format)


ENV_PREFIX = "INSIGHTLY_ETL"
_SHARED = {"--rate-limit", "--max-in-flight", "--max-requests", "--reserve", "--sandbox"}


def name_envvars(
    group: click.Group, prefix: str = ENV_PREFIX, path: str = ""
) -> list[tuple[str, str]]:
    """Give every option an environment variable: INSIGHTLY_ETL_<COMMAND>_<OPTION> (e.g.
    INSIGHTLY_ETL_EXPORT_FORMAT), or INSIGHTLY_ETL_<OPTION> for the global and API options
    every command shares (INSIGHTLY_ETL_RESERVE, INSIGHTLY_ETL_LOG_FORMAT). An option that
    already reads one ($INSIGHTLY_POD) keeps it. Returns (variable, command option) pairs."""
    shared = {opt for o in GLOBAL_OPTIONS for opt in _flags(o)} | _SHARED
    named: list[tuple[str, str]] = []
    for name, command in [("", group), *sorted(group.commands.items())]:
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in ("help", "version"):
                continue
            flag = max(param.opts, key=len)
            if param.envvar is None:  # the sandbox server's --rate-limit is not the client's
                mine = name and (flag not in shared or name == "sandbox")
                where = f"{prefix}_{name.upper()}" if mine else ENV_PREFIX
                param.envvar = f"{where}_{flag.lstrip('-').upper().replace('-', '_')}"
            named.append((str(param.envvar), f"{path}{name} {flag}".strip()))
        if isinstance(command, click.Group) and command is not group:
            named += name_envvars(command, f"{prefix}_{name.upper()}", f"{path}{name} ")
    return named


def _flags(decorator: Callable[[Any], Any]) -> list[str]:
    def probe() -> None:
        pass

    decorated: Any = decorator(probe)
    return [opt for p in decorated.__click_params__ for opt in p.opts]


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


def account_options(func: F) -> F:
    """`--accounts FILE --account NAME`: one entry of accounts.yaml gives the key, pod or URL,
    reserve and rate cap (the command hands them on as `account`)."""
    func = click.option(
        "--account",
        "account_name",
        metavar="NAME",
        help="With --accounts: the account to use (its key, pod or URL, reserve and rate).",
    )(func)
    return click.option(
        "--accounts",
        "accounts_file",
        type=LocalPath(dir_okay=False, exists=True, path_type=Path),
        help="An accounts.yaml (see Many accounts); --account picks the entry.",
    )(func)


def pick_account(
    ctx: Context, api: ApiOptions | None, accounts_file: Path | None, name: str | None
) -> ApiOptions | None:
    """The entry --account names, set on the context (its key is used from then on), and the
    API options with its reserve and rate cap."""
    if (accounts_file is None) != (name is None):
        raise click.UsageError("--accounts FILE and --account NAME go together")
    if accounts_file is None or name is None:
        return api

    from insightly_etl.accounts import pick, read_accounts

    entry = pick(read_accounts(accounts_file), name, accounts_file)
    ctx.account_entry = entry
    if ctx.summary is not None:
        ctx.summary.account_name = entry.name
    if api is None:  # status: reads the checkpoint only
        return None
    refuse_connection_options(ctx)
    if api.use_sandbox:
        raise click.UsageError("--account uses the account's own key: leave out --sandbox")
    return for_account(api, entry)


def for_account(api: ApiOptions, entry: Any) -> ApiOptions:
    """The API options for one entry of accounts.yaml: the lower rate cap and the larger
    reserve of the command line's and the entry's (each only ever makes a run more careful)."""
    from dataclasses import replace

    return replace(
        api,
        rate_limit=min(api.rate_limit, entry.rate or api.rate_limit),
        reserve=max(api.reserve, entry.reserve),
    )


def refuse_connection_options(ctx: Context) -> None:
    """--accounts gives each account its key and URL: one given besides would be ignored, and
    a run meant for a sandbox would go to the account's real URL."""
    given = [
        flag
        for flag, value in (
            ("--api-key-file", ctx.api_key_file),
            ("--pod / $INSIGHTLY_POD", ctx.pod),
            ("--api-url / $INSIGHTLY_API_URL", ctx.api_url),
        )
        if value
    ]
    if given:
        raise click.UsageError(
            f"--accounts gives each account its key and URL: leave out {', '.join(given)} "
            "(or change the entry's url:, pod:, key_env: or key_file:)"
        )


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
            try:
                return await go(client)
            finally:
                if ctx.summary is not None:
                    note_client(ctx.summary, client)

    with api_settings(ctx, api.use_sandbox) as settings:
        return asyncio.run(with_client(settings))


def note_client(summary: RunSummary, client: Any) -> None:
    """What the client spent and saw, into the run's summary; when to retry after a stop."""
    summary.took(client.stats.summary(), client.quota.remaining, client.quota.limit)
    if client.stopped_by is not None:
        summary.stop_reason = client.stopped_by.stop_reason
    at = client.retry_not_before()
    if at is not None and summary.retry_not_before is None:
        summary.retry_not_before = utc_text(at)


def note_outcome(summary: RunSummary | None, outcome: Any, files: Any, account: str | None) -> None:
    """An import's or undo's own stop (the run ended cleanly: no exception) and its files."""
    if summary is None:
        return
    if outcome.stopped is not None and summary.stop_reason is None:
        summary.stop_reason = StopReason(str(outcome.stopped))
    summary.files = [str(f) for f in files]
    summary.account = account or summary.account


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

    return (
        NullProgress() if quiet or not sys.stderr.isatty() else TqdmProgress()
    )  # JsonLines: not a tty


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 request`, `2 requests`, `1 object type`."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


REPEAT_S = 0.5  # a second Ctrl-C sooner than this is the first one delivered twice


@contextmanager
def stop_on_signals(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, *, repeat_s: float = REPEAT_S
) -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM set `stop` (no new request leaves); a second Ctrl-C aborts at once.
    SIGTERM again is the same stop (GNU timeout sends it to the process and to its group:
    twice), and so is a Ctrl-C delivered twice within `repeat_s`: only then is Ctrl-C given
    back to Python, whose KeyboardInterrupt comes even while the loop is busy. Yields the
    signals received, for the exit code."""
    import signal

    received: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {}  # the handlers signal.signal replaced (its fallback only)

    def restore(signums: tuple[int, ...] = wanted) -> None:
        for signum in signums:
            if previous:
                signal.signal(signum, previous[signum])
            else:
                loop.remove_signal_handler(signum)

    def on_signal(signum: int) -> None:
        if received:  # a stop is under way: the same one, sent again
            return
        received.append(signum)
        stop.signum = signum  # type: ignore[attr-defined]  # the client's Halted says which
        click.echo(
            "\nStopping: no new request is sent; reads in flight are dropped, writes in flight"
            " awaited (Ctrl-C again to abort at once)…",
            err=True,
        )
        stop.set()
        loop.call_later(repeat_s, restore, (signal.SIGINT,))  # a person's second Ctrl-C

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
        restore()
