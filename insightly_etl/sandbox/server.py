"""Serving the sandbox with uvicorn: in the foreground (`insightly-etl sandbox`) or on a
background thread bound to a free loopback port (`--sandbox` on other commands, and tests)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from insightly_etl.sandbox.app import DroppedConnection, Sandbox, SandboxAccounts, SandboxConfig


class _HideInjectedDrops(logging.Filter):
    """uvicorn logs an app exception with a traceback; an injected drop is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


def _build(config: SandboxConfig, more: list[SandboxConfig]) -> Sandbox | SandboxAccounts:
    """One sandbox account, or (with `more`) several behind one address, picked by the key."""
    first = Sandbox(config)
    return SandboxAccounts([first, *(Sandbox(c) for c in more)]) if more else first


def _close(sandbox: Sandbox | SandboxAccounts) -> None:
    if isinstance(sandbox, SandboxAccounts):
        sandbox.close()
    else:
        sandbox.account.close()


def _uvicorn_config(sandbox: Sandbox | SandboxAccounts, *, log_level: str) -> uvicorn.Config:
    logging.getLogger("uvicorn.error").addFilter(_HideInjectedDrops())
    return uvicorn.Config(
        sandbox.app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        interface="asgi3",  # SandboxAccounts.app is a bound method: uvicorn cannot tell
        timeout_keep_alive=30,
        date_header=False,  # the app sends its own, from the account's clock
    )


def serve(
    config: SandboxConfig,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    announce: Callable[[str], None] = lambda url: None,
    more: list[SandboxConfig] | None = None,
) -> None:
    """Run until interrupted (Ctrl-C). The socket is bound here, so `port` 0 takes a free
    port and `announce` is told the real URL before the first request can come. `more`:
    other accounts served beside the first, each picked by its own key."""
    sandbox = _build(config, more or [])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from here on: the URL may be used at once
        bound = sock.getsockname()[1]
        announce(f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{bound}/v3.1/")
        uvicorn.Server(_uvicorn_config(sandbox, log_level=log_level)).run(sockets=[sock])
    finally:
        sock.close()
        _close(sandbox)


@dataclass
class RunningSandbox:
    sandbox: Sandbox  # the first account
    url: str  # base URL of the API, ending in /v3.1/
    root: str  # e.g. http://127.0.0.1:43121 (admin routes live under /_sandbox/)
    sandboxes: list[Sandbox]  # every account served (one unless `more` was given)


@contextmanager
def running_sandbox(
    config: SandboxConfig, *, host: str = "127.0.0.1", more: list[SandboxConfig] | None = None
) -> Iterator[RunningSandbox]:
    """A real uvicorn server on a free loopback port, on a daemon thread, for the duration;
    `more`: other accounts beside the first, each picked by its key."""
    sandbox = _build(config, more or [])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(sandbox, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    root = f"http://{host}:{port}"
    try:
        every = sandbox.sandboxes if isinstance(sandbox, SandboxAccounts) else [sandbox]
        yield RunningSandbox(sandbox=every[0], url=f"{root}/v3.1/", root=root, sandboxes=every)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        _close(sandbox)
