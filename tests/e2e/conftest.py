"""Every test here runs real processes or a real server: all of them are `slow` (make test
runs them; make test-fast does not)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.slow)
