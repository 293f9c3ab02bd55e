"""A local stand-in for the Insightly API v3.1: same paths, auth, paging, limits, headers,
error bodies, custom-field validation and ETags, with latency and fault injection.

Nothing outside this subpackage imports it except the CLI command that starts it (and tests).
"""

from insightly_etl.sandbox.app import Sandbox, SandboxConfig, create_app
from insightly_etl.sandbox.server import RunningSandbox, running_sandbox, serve
from insightly_etl.sandbox.store import SeedError

__all__ = [
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "SeedError",
    "create_app",
    "running_sandbox",
    "serve",
]
