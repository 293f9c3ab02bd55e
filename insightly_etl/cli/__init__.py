"""The `insightly-etl` command line: a thin click layer over the library, one module per
command group — `export`, `load` (validate, fields, mapping, import), `admin` (status, undo),
`sandbox` — over the group, its error boundary and the shared options in `common`."""

import signal
import sys

# Ctrl-C while the modules below load would print a traceback: exit 130 quietly instead,
# then hand the signal back to Python (the commands handle it from then on).
_previous = signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

from insightly_etl.cli import admin, export, load, sandbox  # noqa: E402, F401  (register commands)
from insightly_etl.cli.common import main, name_envvars  # noqa: E402

ENVIRONMENT = name_envvars(main)  # every option from INSIGHTLY_ETL_…, as the README lists them
signal.signal(signal.SIGINT, _previous)

__all__ = ["main"]
