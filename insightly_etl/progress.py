"""Progress reporting behind one small interface, so library code never prints.

The CLI passes `TqdmProgress` (one bar per object, records/s and ETA) or `NullProgress`
(--quiet, tests). tqdm is imported here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Progress(Protocol):
    def start(self, label: str, total: int | None = None, unit: str = "rec") -> None: ...
    def set_total(self, total: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...


class NullProgress:
    def start(self, label: str, total: int | None = None, unit: str = "rec") -> None:
        pass

    def set_total(self, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


class TqdmProgress:
    """One bar at a time; `prefix` and `position` keep several accounts' bars apart."""

    def __init__(self, prefix: str = "", position: int | None = None) -> None:
        self._bar: Any = None
        self.prefix, self.position = prefix, position

    def start(self, label: str, total: int | None = None, unit: str = "rec") -> None:
        from tqdm import tqdm

        self.finish()
        self._bar = tqdm(
            total=total,
            desc=f"{self.prefix}{label}",
            unit=unit,
            unit_scale=True,
            leave=self.position is None,
            dynamic_ncols=True,
            position=self.position,
        )

    def set_total(self, total: int) -> None:
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def shown(
    progress: Progress | None,
    label: str,
    total: int | None = None,
    *,
    unit: str = "row",
    when: bool = True,
) -> Iterator[Callable[[int], None]]:
    """A bar for one piece of work, ended however the work ends (before an error is said);
    none `when` the work is too small to wait for. Gives the bar's advance."""
    if progress is None or not when:
        yield lambda n: None
        return
    progress.start(label, total=total, unit=unit)
    try:
        yield progress.advance
    finally:
        progress.finish()
