"""Issue 23, Windows: no POSIX-only module on any command path, and Ctrl-C caught where the
event loop has no signal handlers of its own (Windows' loops raise NotImplementedError)."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
from pathlib import Path

import pytest

import insightly_etl
from insightly_etl.cli.common import stop_on_signals

pytestmark = pytest.mark.anyio

POSIX_ONLY = {"fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "posix", "syslog"}
PACKAGE = Path(insightly_etl.__file__).parent


def _platform_guarded(node: ast.If) -> bool:
    return "platform" in ast.unparse(node.test) or "os.name" in ast.unparse(node.test)


def unguarded_imports(tree: ast.Module) -> set[str]:
    """Modules imported anywhere except under an `if sys.platform …` / `if os.name …`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _platform_guarded(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_no_module_imports_a_posix_only_module_outside_a_platform_check() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            unguarded_imports(ast.parse(path.read_text())) & POSIX_ONLY
        )
        for path in PACKAGE.rglob("*.py")
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_the_scan_sees_an_unguarded_import() -> None:
    assert unguarded_imports(ast.parse("import fcntl\n")) == {"fcntl"}
    assert unguarded_imports(
        ast.parse("import sys\nif sys.platform == 'win32':\n import msvcrt\nelse:\n import fcntl\n")
    ) == {"sys"}


async def test_ctrl_c_is_caught_where_the_loop_has_no_signal_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()

    def not_here(*args: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", not_here)
    before = signal.getsignal(signal.SIGTERM)
    stop = asyncio.Event()
    with stop_on_signals(loop, stop) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), timeout=10)
    assert received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is before  # given back after the first signal


async def test_a_repeated_signal_is_the_same_stop_and_ctrl_c_then_goes_back_to_python() -> None:
    """GNU timeout sends SIGTERM to the process and to its group: the second one killed the
    run before its writes in flight were heard, leaving rows in flight and no summary. A
    Ctrl-C delivered twice at once is one too; a person's later one is Python's again (its
    KeyboardInterrupt aborts at once even while the loop is busy)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with stop_on_signals(loop, stop, repeat_s=0.2) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # at once: the same stop, delivered twice
        await asyncio.wait_for(stop.wait(), timeout=10)
        await asyncio.sleep(0)  # the later signals' handlers have run
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        deadline = loop.time() + 10
        while signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            assert loop.time() < deadline, "Ctrl-C was never given back"
            await asyncio.sleep(0.02)
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM: still ours
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_lock_works_with_the_posix_module_gone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The lock module as Windows loads it: no fcntl (importing it fails), `msvcrt.locking`
    instead, here a stand-in that keeps byte locks per file the way Windows does."""
    import importlib
    import sys
    import types

    from insightly_etl import lock
    from insightly_etl.errors import CheckpointInUse

    held: dict[int, int] = {}  # inode -> fd holding byte 0

    def locking(fd: int, mode: int, nbytes: int) -> None:
        inode = os.fstat(fd).st_ino
        if mode == fake.LK_NBLCK:
            if inode in held and held[inode] != fd:
                raise OSError(36, "Resource deadlock avoided")
            held[inode] = fd

    fake = types.SimpleNamespace(LK_NBLCK=2, LK_UNLCK=0, locking=locking)
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(sys, "platform", "win32")
    windows = importlib.reload(lock)
    try:
        checkpoint = tmp_path / "c.sqlite"
        first = windows.RunLock(checkpoint)
        with pytest.raises(CheckpointInUse, match=f"in use by process {os.getpid()} since"):
            windows.RunLock(checkpoint)
        first.release()
        held.clear()  # closing the file drops a Windows lock
        windows.RunLock(checkpoint).release()
    finally:
        monkeypatch.undo()
        importlib.reload(lock)


def test_the_api_client_loads_neither_pandas_nor_pyarrow() -> None:
    """The layering contract allows indirect imports; this is the one it cannot see: a
    helper reached through another module that drags pandas into the client."""
    import subprocess
    import sys

    probe = "import sys, insightly_etl.api.client; print(sorted({'pandas', 'pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_command_line_starts_without_pandas() -> None:
    """pandas is a third of a second of every start: imported where a frame is read or
    written (an export's first page needs it only in a worker thread, while pages load)."""
    import subprocess
    import sys

    probe = (
        "import sys, insightly_etl.cli, insightly_etl.extract.remote, "
        "insightly_etl.extract.export; print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_lock_file_removed_by_its_holder_is_never_held_by_two_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose checkpoint is discarded removes its lock file while it holds it. A run
    that opened the file just before, and locks it once it is free, would hold a lock on a
    file no other run opens (a third run makes a new one): it takes the new file instead."""
    from insightly_etl import lock
    from insightly_etl.errors import CheckpointInUse

    checkpoint = tmp_path / "c.sqlite"
    path = tmp_path / "c.sqlite.lock"
    holder = lock.RunLock(checkpoint)
    holder.release(remove=True)
    assert not path.exists()  # nothing left beside a discarded checkpoint
    real = lock._try_lock
    removed: list[int] = []

    def removed_meanwhile(fd: int) -> bool:  # the holder removes it between open and lock
        if not removed:
            removed.append(os.fstat(fd).st_ino)
            path.unlink()
        return real(fd)

    monkeypatch.setattr(lock, "_try_lock", removed_meanwhile)
    late = lock.RunLock(checkpoint)
    assert removed and os.path.samestat(os.fstat(late.fd), os.stat(path))  # the new file's
    with pytest.raises(CheckpointInUse, match=f"in use by process {os.getpid()} since"):
        lock.RunLock(checkpoint)  # a third run finds it held
    late.release()
