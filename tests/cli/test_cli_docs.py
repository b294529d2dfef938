"""Every command and group has --help text from its docstring (as in sqlite-utils' test_docs)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from cli_helpers import run

from agenttier_router.cli import cli

Path = tuple[str, ...]


def walk(command: click.Command, path: Path = ()) -> Iterator[tuple[Path, click.Command]]:
    """Yield (path, command) for ``command`` and everything under it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli))


def test_the_tree_is_the_documented_one() -> None:
    assert sorted(" ".join(path) for path, _ in COMMANDS) == [
        "",
        "db",
        "db check",
        "db purge",
        "db rollup",
        "db upgrade",
        "records",
        "records audit",
        "records costs",
        "records sandbox-events",
        "serve",
    ]


@pytest.mark.parametrize(
    ("path", "command"),
    [pytest.param(path, command, id=" ".join(path) or "root") for path, command in COMMANDS],
)
def test_every_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert command.help and command.help.strip(), path
    assert command.get_short_help_str().strip(), path
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"

    result = run(*path, "--help")

    assert result.code == 0
    assert result.stderr == ""
    first_line = command.help.strip().splitlines()[0]
    assert " ".join(first_line.split()) in " ".join(result.stdout.split())
