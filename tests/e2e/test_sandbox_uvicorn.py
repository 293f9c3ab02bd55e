"""The sandbox over a real socket: uvicorn on a loopback port, and the `insightly-etl sandbox` command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from insightly_etl.sandbox import SandboxConfig, running_sandbox
from tests.conftest import AUTH, KEY


def test_serves_pages_over_a_real_socket() -> None:
    with (
        running_sandbox(SandboxConfig(api_key=KEY)) as sb,
        httpx.Client(base_url=sb.url, headers=AUTH) as c,
    ):
        r = c.get("Contacts", params={"top": 2})
        assert r.status_code == 200 and len(r.json()) == 2
        assert r.headers["X-RateLimit-Limit"] == "40000"


def test_a_dropped_write_is_applied_and_the_client_sees_the_connection_close() -> None:
    config = SandboxConfig(api_key=KEY, fault_rate=1.0, fault_seed=3, fault_slow_s=0.01)
    with running_sandbox(config) as sb, httpx.Client(base_url=sb.url, headers=AUTH) as c:
        drops = 0
        for n in range(30):
            before = len(sb.sandbox.account.collections["Contacts"].ids)
            try:
                c.post("Contacts", json={"FIRST_NAME": f"Drop{n}"})
            except httpx.RemoteProtocolError:
                drops += 1
                assert len(sb.sandbox.account.collections["Contacts"].ids) == before + 1
        assert drops == sb.sandbox.faults_injected["drop"] > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_sandbox_command_serves_until_stopped() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "insightly_etl",
            "sandbox",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--generate",
            "contacts=30",
            "--daily-quota",
            "77",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/v3.1/Contacts", params={"top": 500}, headers=AUTH
                )
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(proc.stderr.read().decode() if proc.stderr else "did not start")
                time.sleep(0.1)
        assert len(r.json()) == 250
        assert r.headers["X-RateLimit-Remaining"] == "76"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
