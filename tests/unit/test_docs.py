"""Every command has help, and the README mentions every command and every option."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from insightly_etl.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")


def commands() -> list[tuple[str, click.Command]]:
    found = []

    def walk(group: click.Group, prefix: str) -> None:
        for name, cmd in group.commands.items():
            found.append((f"{prefix}{name}", cmd))
            if isinstance(cmd, click.Group):
                walk(cmd, f"{prefix}{name} ")

    walk(main, "")
    return found


@pytest.mark.parametrize(("name", "command"), commands(), ids=[n for n, _ in commands()])
def test_every_command_has_help_and_is_documented(name: str, command: click.Command) -> None:
    result = CliRunner().invoke(main, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert command.help and command.help.strip()
    assert f"insightly-etl {name}" in README
    for param in command.params:
        if isinstance(param, click.Option):
            assert any(opt in README for opt in param.opts), f"{name}: {param.opts} not in README"
