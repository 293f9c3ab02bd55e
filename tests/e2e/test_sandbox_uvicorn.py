"""The sandbox over a real socket: uvicorn on a loopback port, and the `insightly-etl sandbox` command."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

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


def test_the_sandbox_command_serves_until_stopped() -> None:
    """`--port 0`: the sandbox binds a free port itself and prints it (no port picked here,
    closed and then reused: nothing else can take it in between)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "insightly_etl",
            "sandbox",
            "--port",
            "0",
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
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()  # the first thing it says: where it listens
        assert line.startswith("Insightly sandbox on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        assert not url.startswith("http://127.0.0.1:0/")
        # listening before it says where: the first request waits in the queue, if need be
        r = httpx.get(f"{url}Contacts", params={"top": 500}, headers=AUTH, timeout=60)
        assert len(r.json()) == 250
        assert r.headers["X-RateLimit-Remaining"] == "76"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
