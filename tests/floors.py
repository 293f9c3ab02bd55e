"""The dependency floors as pip constraints: `name==minimum` for every `name>=minimum` of
pyproject.toml's dependencies. `make test-lowest` installs exactly these."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def floors(pyproject: Path = PYPROJECT) -> list[str]:
    out = []
    for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        found = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*$", requirement)
        if found is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} names no floor (name>=version)")
        out.append(f"{found.group(1)}=={found.group(2)}")
    return out


if __name__ == "__main__":
    sys.stdout.write("".join(f"{line}\n" for line in floors()))
