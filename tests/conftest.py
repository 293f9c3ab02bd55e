from __future__ import annotations

import base64
import errno
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from insightly_etl.sandbox import Sandbox, SandboxConfig

KEY = "sandbox-test-key-7f3a9c"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _FullDisk:
    """A file on a disk with `room` bytes left: a write past them fails as a full disk does
    (ENOSPC, naming no file). The disk is outside the process: its answer is faked."""

    def __init__(self, file: Any, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return int(self.file.write(data))

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, int], None]:
    """`full_disk(module, room)`: every partial file `module` opens (its `open_partial`) has
    `room` bytes left."""

    def fill(module: Any, room: int) -> None:
        real = module.open_partial

        def opened(path: Any) -> tuple[Any, _FullDisk]:
            tmp, file = real(path)
            return tmp, _FullDisk(file, room)

        monkeypatch.setattr(module, "open_partial", opened)

    return fill


@pytest.fixture(scope="session")
def seeded() -> Sandbox:
    """One read-only seeded sandbox shared by tests that only read (rate limit off)."""
    return Sandbox(SandboxConfig(api_key=KEY, rate_limit=1e9, daily_quota=10**9))


@pytest.fixture
def make_sandbox() -> Callable[..., Sandbox]:
    def make(**options: Any) -> Sandbox:
        options.setdefault("rate_limit", 1e9)
        options.setdefault("daily_quota", 10**9)
        return Sandbox(SandboxConfig(api_key=KEY, **options))

    return make


@asynccontextmanager
async def asgi_client(sandbox: Sandbox, *, auth: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app),
        base_url="http://sandbox.test/v3.1/",
        headers=AUTH if auth else {},
    ) as client:
        yield client


def sandbox_client(sandbox: Sandbox, **options: Any):  # -> InsightlyClient
    """Our client wired to an in-process sandbox (no socket)."""
    from insightly_etl.api import InsightlyClient
    from insightly_etl.config import load_settings

    options.setdefault("rate", 1000)
    options.setdefault("transport", httpx.ASGITransport(app=sandbox.app))
    return InsightlyClient(load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/"), **options)


def cli_runner():  # -> click.testing.CliRunner
    """A CliRunner that keeps stderr apart, on every click the project supports (8.1 needs
    `mix_stderr=False`; 8.2 keeps them apart always and dropped the argument)."""
    import inspect

    from click.testing import CliRunner

    mixed = "mix_stderr" in inspect.signature(CliRunner.__init__).parameters
    return CliRunner(mix_stderr=False) if mixed else CliRunner()


class Bars:
    """A Progress that records what its bars showed, [label, total, unit, advanced, ended],
    and fails a test that starts a bar over an open one or advances none."""

    def __init__(self) -> None:
        self.shown: list[list[Any]] = []

    @property
    def open(self) -> bool:
        return bool(self.shown) and not self.shown[-1][4]

    def start(self, label: str, total: int | None = None, unit: str = "rec") -> None:
        assert not self.open, f"{label!r} started over {self.shown[-1][0]!r}"
        self.shown.append([label, total, unit, 0, False])

    def set_total(self, total: int) -> None:
        assert self.open
        self.shown[-1][1] = total

    def advance(self, n: int) -> None:
        assert self.open, f"advanced {n} with no bar open"
        self.shown[-1][3] += n

    def finish(self) -> None:
        if self.open:
            self.shown[-1][4] = True
