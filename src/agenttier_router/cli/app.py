"""The root command, and :func:`main`, which turns every failure into one line on stderr.

Exit statuses: 0 on success; 1 when the command fails (the database cannot
be reached, its schema is newer than this version, ``db check`` finds it
behind); 2 for a bad flag or value, or when no storage is configured.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from agenttier_router import __version__
from agenttier_router.storage import StorageError, mask_secrets

from .db import db
from .output import safe_text
from .records import records
from .serve import serve
from .watch import watch

__all__ = ["PROG", "cli", "main"]

PROG = "agenttier-router"
"""The command's name, as installed."""

# click < 8.2 prints the help itself for a bare group; newer versions raise this.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Query and maintain AgentTier Router's stored records.

    Every command that reads the database takes --dsn URL, a storage URL
    such as sqlite:///agenttier.db, postgresql://user@host/db or
    mysql://user@host/db. Without --dsn, the URL comes from STORAGE_DSN,
    else STORAGE_SQLITE_PATH (a SQLite file path).

    Exit status: 0 on success, 1 when the command fails, 2 for a bad flag or
    value or when no storage is configured.
    """


cli.add_command(db)
cli.add_command(records)
cli.add_command(serve)
cli.add_command(watch)


def _one_line(text: str) -> str:
    """``text`` on one line, with any password in a URL masked and control characters escaped.

    Belt and braces: the storage layer never puts a password in a message,
    and the CLI shows URLs masked; this catches a URL that slipped through.
    A message may quote what a Router or a database answered, so it reaches
    the terminal as the table does, with its control characters escaped.
    """
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return safe_text(mask_secrets(line))


def _fail(message: str) -> None:
    click.echo(f"{PROG}: {_one_line(message)}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``agenttier-router`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Unlike click's standalone mode, which prints the usage and several lines
    for a bad flag, every error here is one line on stderr::

        agenttier-router: error: No such option '--bogus' (see 'agenttier-router db check --help')
    """
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except _NO_ARGS_IS_HELP as error:
        error.show()
        return 2
    except click.UsageError as error:  # includes BadParameter and NoSuchOption
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        _fail(f"error: {error.format_message().rstrip('.')}{hint}")
        return 2
    except click.ClickException as error:
        _fail(error.format_message())
        return error.exit_code
    except StorageError as error:
        _fail(str(error))
        return 1
    except click.Abort:
        _fail("aborted")
        return 130
    return result if isinstance(result, int) else 0
