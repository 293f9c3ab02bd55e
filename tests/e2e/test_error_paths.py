"""Every command through every way the API can fail before the work starts: one clear
`Error:` line, the documented exit code, never a traceback, never the key.

Real processes (an unretrieved task exception is printed by the interpreter at exit, which an
in-process runner would not show), the real sandbox where it can play the part, and a small
hostile server for what the sandbox never does (403 on everything, a 401 echoing the key)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from insightly_etl.sandbox import SandboxConfig, running_sandbox
from tests.conftest import KEY

pytestmark = pytest.mark.slow

MAPPING = (
    "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\n"
    "columns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n"
)

# command -> its arguments ({d}: the test's folder)
COMMANDS = {
    "export": ["export", "contacts", "--out", "{d}/out"],
    "import": ["import", "{d}/p.csv", "--mapping", "{d}/m.yaml", "--quiet"],
    "undo": ["undo", "{d}/done.csv.sandbox.checkpoint.sqlite"],
    "status": ["status", "{d}/done.csv.sandbox.checkpoint.sqlite"],
    "validate": ["validate", "{d}/p.csv", "--mapping", "{d}/m.yaml"],
    "fields": ["fields", "contacts"],
    "mapping draft": ["mapping", "draft", "{d}/p.csv", "--object", "contacts"],
}

# fault -> (exit code, the one line that says why)
FAULTS = {
    "wrong key": (77, "Error: GET "),
    "forbidden": (77, "Error: GET "),
    "not found": (2, "Error: http://127.0.0.1:"),  # a URL that is not the API, said so
    "budget spent": (75, "Error: the budget of 1 requests for this run is spent"),
    "connection refused": (69, "Error: GET "),
    "quota spent": (75, "Error: GET "),
    "401 echoing the key": (77, "Error: GET "),
}
# where a command answers otherwise: one request is all validate, fields and a draft need;
# an import that stops for quota says "Stopped:" (a resumable stop, not a failure)
EXCEPTIONS = {
    **{(c, "budget spent"): (0, None) for c in ("validate", "fields", "mapping draft")},
    ("import", "budget spent"): (75, "Stopped: the budget of 1 requests for this run is spent"),
    ("import", "quota spent"): (75, "Stopped: GET "),
}


class _Hostile(BaseHTTPRequestHandler):
    """/forbidden/…: 403 with Insightly's text; /echo/…: 401 whose body and header carry
    the key the request sent, in plain text and in base64."""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        key = base64.b64decode(auth.removeprefix("Basic ")).decode(errors="replace").rstrip(":")
        if self.path.startswith("/forbidden/"):
            status, body = 403, {"Message": "API User does not have access to Record."}
        else:
            status, body = 401, {"Message": f"key {key} refused ({auth})"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("WWW-Authenticate", f'Basic realm="{key}"')
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, list[str]]]]:
    """fault -> (API URL, extra options)."""
    hostile = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{hostile.server_address[1]}"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    refused = f"http://127.0.0.1:{closed.getsockname()[1]}/v3.1/"
    with (
        running_sandbox(SandboxConfig(api_key="another-key")) as other,
        running_sandbox(SandboxConfig(api_key=KEY)) as sb,
        running_sandbox(SandboxConfig(api_key=KEY, daily_quota=1)) as spent,
    ):
        yield {
            "wrong key": (other.url, []),
            "forbidden": (f"{root}/forbidden/v3.1/", []),
            "not found": (f"{sb.root}/nowhere/v3.1/", []),
            "budget spent": (sb.url, ["--max-requests", "1"]),
            "connection refused": (refused, []),
            "quota spent": (spent.url, []),
            "401 echoing the key": (f"{root}/echo/v3.1/", []),
        }
    hostile.shutdown()
    closed.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file, its mapping, and the checkpoint of an import that created one contact."""
    d = tmp_path_factory.mktemp("errors")
    (d / "p.csv").write_text("Name,Email\nAda,ada@errors.example\n", encoding="utf-8")
    (d / "m.yaml").write_text(MAPPING, encoding="utf-8")
    (d / "done.csv").write_text("Name,Email\nBo,bo@errors.example\n", encoding="utf-8")
    made = _cli(["import", str(d / "done.csv"), "--mapping", str(d / "m.yaml"), "--sandbox"], {})
    assert made.returncode == 0, made.stderr
    return d


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "insightly_etl", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.fixture(scope="module")
def runs(
    urls: dict[str, tuple[str, list[str]]], folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every command under every fault, four processes at a time (each is mostly start-up)."""

    def one(case: tuple[str, str]) -> tuple[Path, subprocess.CompletedProcess[str]]:
        command, fault = case
        url, extra = urls[fault]
        d = tmp_path_factory.mktemp("run")
        shutil.copytree(folder, d, dirs_exist_ok=True)  # a failed undo must not mark another's
        args = [a.format(d=d) for a in COMMANDS[command]]
        if command != "status":  # status reads the checkpoint only, never the API
            args += extra
        return d, _cli(args, {"INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": url})

    cases = [(c, f) for c in COMMANDS for f in FAULTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(cases, pool.map(one, cases), strict=True))


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_fails_cleanly(
    command: str,
    fault: str,
    runs: dict[tuple[str, str], tuple[Path, subprocess.CompletedProcess[str]]],
) -> None:
    d, run = runs[command, fault]
    output = run.stdout + run.stderr
    assert "Traceback" not in output and "Task exception" not in output, output
    assert KEY not in output and base64.b64encode(f"{KEY}:".encode()).decode() not in output
    if command == "status":
        assert run.returncode == 0, output
        assert run.stdout.startswith(
            f"{d}/done.csv.sandbox.checkpoint.sqlite: done.csv -> contacts ("
        )
        assert "undo:" not in run.stdout, output
        return
    code, start = EXCEPTIONS.get((command, fault), FAULTS[fault])
    said = [ln for ln in run.stderr.splitlines() if ln.startswith(("Error: ", "Stopped: "))]
    if start is None:
        assert (run.returncode, said) == (code, []), output
        return
    assert (run.returncode, len(said)) == (code, 1), output
    assert said[0].startswith(start), output


def test_a_closed_stderr_keeps_the_run_s_own_exit_code(tmp_path: Path) -> None:
    """`insightly-etl … 2>&1 | head -1`: the writes after the reader went failed, and click
    ended a refused run with exit 1 (2 here) about half the time."""
    (tmp_path / "afile").write_text("")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is said: every write fails
    try:
        process = subprocess.run(
            [sys.executable, "-m", "insightly_etl", "export", "users", "--out", "afile"],
            stdout=write,
            stderr=write,
            cwd=tmp_path,
            env={**os.environ, "INSIGHTLY_API_KEY": KEY},
            timeout=120,
        )
    finally:
        os.close(write)
    assert process.returncode == 2
    closed = subprocess.run(  # `2>&-`: no stderr at all (Python's sys.stderr is None)
        [sys.executable, "-m", "insightly_etl", "export", "users", "--out", "afile"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**os.environ, "INSIGHTLY_API_KEY": KEY},
        preexec_fn=lambda: os.close(2),
        timeout=120,
    )
    assert closed.returncode == 2
