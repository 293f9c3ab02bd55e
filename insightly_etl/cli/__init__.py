"""The `insightly-etl` command line: a thin click layer over the library, one module per
command group — `export`, `load` (validate, fields, mapping, import), `admin` (status, undo),
`sandbox` — over the group, its error boundary and the shared options in `common`."""

from insightly_etl.cli import admin, export, load, sandbox  # noqa: F401  (they register commands)
from insightly_etl.cli.common import main

__all__ = ["main"]
