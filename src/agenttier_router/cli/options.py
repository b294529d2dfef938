"""The flags several commands share, and opening the store a command names.

``--dsn`` sits on every command that touches the database (so that
``agenttier-router db upgrade --dsn URL`` reads naturally); without it the
URL comes from the environment, which is read here and nowhere else.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from click.core import ParameterSource

from agenttier_router.storage import (
    Backend,
    InvalidURL,
    NoopBackend,
    SQLBackend,
    StorageError,
    mask_url,
    open_backend,
    sqlite_path,
    url_from_env,
)
from agenttier_router.storage.filters import duration_before

from .output import terminal_width

__all__ = [
    "NO_STORAGE",
    "Moment",
    "Source",
    "dsn_option",
    "format_option",
    "open_records",
    "open_store",
    "page_options",
    "read_secret_file",
    "source_options",
    "table_width",
    "window_options",
]

F = TypeVar("F", bound=Callable[..., Any])

NO_STORAGE = (
    "no storage is configured: pass --dsn URL, or set STORAGE_DSN "
    "(or STORAGE_SQLITE_PATH, a file path)"
)
"""The message for a command run without any storage URL."""

if TYPE_CHECKING:
    _ParamType = click.ParamType[datetime, Any]
else:  # click < 8.5's ParamType is not generic
    _ParamType = click.ParamType



class Moment(_ParamType):
    """A point in time: RFC3339 with a zone, or a duration before now (``24h``, ``7d``).

    A timestamp without a zone is refused rather than guessed at, as the
    storage filters refuse naive datetimes.
    """

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Return ``value`` as a timezone-aware datetime, or fail with a usage error."""
        if isinstance(value, datetime):
            if value.tzinfo is None:
                self.fail("a naive datetime has no time zone", param, ctx)
            return value
        text = str(value).strip()
        try:
            relative = duration_before(text, datetime.now(UTC))
        except ValueError as error:
            self.fail(str(error), param, ctx)
        if relative is not None:
            return relative
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither an RFC3339 time (2026-11-26T17:00:00Z) "
                "nor a duration before now (30m, 24h, 7d, 2w)",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            self.fail(f"{text!r} has no time zone; add Z or an offset such as +02:00", param, ctx)
        return moment


def dsn_option(command: F) -> F:
    """Add ``--dsn URL`` to a command."""
    return click.option(
        "--dsn",
        metavar="URL",
        help="Storage URL, e.g. sqlite:///agenttier.db or postgresql://user@host/db. "
        "Default: $STORAGE_DSN, else $STORAGE_SQLITE_PATH. A password given here shows "
        "in 'ps': prefer $STORAGE_DSN.",
    )(command)


def read_secret_file(path: Path, option: str) -> str:
    """Return the secret held in the file at ``path`` (its text, stripped), for ``option``.

    Raises :class:`click.BadParameter` naming ``option`` and the file, never
    the content, when the file cannot be read or is empty.
    """
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise click.BadParameter(f"cannot read {path}: {reason}",
                                 param_hint=f"'{option}'") from None
    if not secret:
        raise click.BadParameter(f"{path} is empty", param_hint=f"'{option}'")
    return secret


def window_options(command: F) -> F:
    """Add ``--since`` and ``--until`` to a listing command."""
    command = click.option(
        "--until",
        type=Moment(),
        help="Only records before this time (exclusive): RFC3339 with a zone, or 30m, 24h, 7d, 2w.",
    )(command)
    return click.option(
        "--since",
        type=Moment(),
        help="Only records at or after this time: RFC3339 with a zone, or 30m, 24h, 7d, 2w ago.",
    )(command)


def page_options(command: F) -> F:
    """Add ``--limit``, ``--cursor`` and ``--all`` to a listing command."""
    command = click.option(
        "--all",
        "follow",
        is_flag=True,
        help="Follow every page to the end (for export; prefer --format csv or json).",
    )(command)
    command = click.option(
        "--cursor", metavar="CURSOR", help="Resume after the page that printed this cursor."
    )(command)
    return click.option(
        "--limit",
        type=click.IntRange(1, 1000),
        help="Records per page, 1 to 1000 (default 100).",
    )(command)


_TABLE_WIDTH = "agenttier_router.table_width"


def format_option(command: F) -> F:
    """Add ``--format table|json|csv`` and ``--wide`` to a command.

    The command receives ``fmt``; the width its table must fit (None with
    ``--wide``) is read with :func:`table_width`.
    """

    @functools.wraps(command)
    def with_width(*args: Any, wide: bool, **kwargs: Any) -> Any:
        click.get_current_context().meta[_TABLE_WIDTH] = None if wide else terminal_width()
        return command(*args, **kwargs)

    decorated = click.option(
        "--wide", is_flag=True,
        help="Show every table column, however wide. Without it, a table wider than the "
        "terminal ($COLUMNS) is fitted: long text is cut, times lose their fraction of a "
        "second, then the least needed columns are dropped (audit: RESOURCE, NAMESPACE, "
        "DETAILS, SANDBOX_ID; sandbox-events: SANDBOX_NAME, NAMESPACE, MESSAGE, REASON; "
        "costs: NAMESPACE, CPU_HOURS, MEM_GB_HOURS).",
    )(with_width)
    return cast(F, click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="Output format: aligned columns, a JSON array, or CSV with a header row.",
    )(decorated))


def table_width() -> int | None:
    """The width the current command's table must fit, as ``--wide`` and the terminal set it."""
    width: int | None = click.get_current_context().meta.get(_TABLE_WIDTH)
    return width


@dataclass(frozen=True, slots=True)
class Source:
    """Where ``records`` reads from: a database (``--dsn``) or a Router's API (``--url``)."""

    dsn: str | None = None
    url: str | None = None
    api_key: str | None = None


def source_options(command: F) -> F:
    """Add ``--dsn``, ``--url`` and ``--api-key``; the command receives them as ``source``."""

    @functools.wraps(command)
    def with_source(*args: Any, dsn: str | None, url: str | None, api_key: str | None,
                    api_key_file: Path | None, **kwargs: Any) -> Any:
        if api_key_file is not None:
            # The command line wins over the environment; two of a kind are a mistake.
            ctx = click.get_current_context()
            key_from = ctx.get_parameter_source("api_key")
            file_from = ctx.get_parameter_source("api_key_file")
            if api_key is not None and key_from == file_from:
                raise click.UsageError("--api-key and --api-key-file both give the key: give one")
            if api_key is None or file_from == ParameterSource.COMMANDLINE:
                api_key = read_secret_file(api_key_file, "--api-key-file")
        return command(*args, source=Source(dsn, url, api_key), **kwargs)

    decorated = click.option(
        "--api-key-file", type=click.Path(dir_okay=False, path_type=Path),
        envvar="AGENTTIER_API_KEY_FILE", metavar="FILE",
        help="A file holding the API key, for --url; keeps the key out of 'ps'. "
        "[env: AGENTTIER_API_KEY_FILE]",
    )(with_source)
    decorated = click.option(
        "--api-key", envvar="AGENTTIER_API_KEY", metavar="KEY",
        help="An admin's API key, for --url. On the command line it shows in 'ps': "
        "prefer $AGENTTIER_API_KEY or --api-key-file. [env: AGENTTIER_API_KEY]",
    )(decorated)
    decorated = click.option(
        "--url", metavar="URL",
        help="Read through a Router's API (e.g. http://router:8080) instead of the database.",
    )(decorated)
    return cast(F, dsn_option(decorated))


@contextmanager
def open_records(source: Source) -> Iterator[Backend]:
    """Open what ``source`` names for reading: a Router's API, or the store (see open_store)."""
    if source.url is None:
        with open_store(source.dsn, read_only=True) as backend:
            yield backend
        return
    if source.dsn is not None:
        raise click.UsageError("--dsn and --url name two sources: give one")
    if not source.url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="'--url'")
    from .remote import RemoteStore

    remote = RemoteStore(source.url, source.api_key)
    try:
        yield remote
    except StorageError as error:
        raise click.ClickException(f"{source.url}: {error}") from error
    finally:
        remote.close()


@contextmanager
def open_store(
    dsn: str | None, *, create: bool = False, read_only: bool = False
) -> Iterator[Backend]:
    """Open the backend ``--dsn`` or the environment names, and close it afterwards.

    Unless ``create`` is set, a SQLite file that does not exist is an error,
    rather than a new empty database made by a mistyped path. With
    ``read_only``, a database whose schema is missing or behind is an error
    that names the command that upgrades it: the backend would otherwise
    create or upgrade the schema on its first read, and reading commands never
    change a schema.

    Raises :class:`click.UsageError` when no storage is configured and
    :class:`click.BadParameter` for a malformed ``--dsn``; a storage error
    inside the block becomes a one-line :class:`click.ClickException` that
    names the database by its masked URL.
    """
    url = dsn if dsn is not None else url_from_env(os.environ)
    if not url:
        raise click.UsageError(NO_STORAGE)
    try:
        backend = open_backend(url)  # a malformed URL is said first; nothing connects yet
        path = sqlite_path(url)
        if not create and path is not None and not path.exists():
            backend.close()
            raise click.ClickException(
                f"no SQLite database at {path}; to create one, run "
                f"'agenttier-router db upgrade --dsn {mask_url(url)}'"
            )
    except InvalidURL as error:
        if dsn is not None:
            raise click.BadParameter(str(error), param_hint="'--dsn'") from None
        raise click.ClickException(f"the storage URL in the environment: {error}") from error
    except StorageError as error:
        raise click.ClickException(str(error)) from error
    if isinstance(backend, NoopBackend):  # pragma: no cover - a non-empty URL is never Noop
        raise click.UsageError(NO_STORAGE)
    try:
        if read_only and isinstance(backend, SQLBackend):
            _require_schema(backend)
        yield backend
    except StorageError as error:
        raise click.ClickException(f"{mask_url(url)}: {error}") from error
    finally:
        backend.close()


def _require_schema(backend: SQLBackend) -> None:
    """Fail, changing nothing, unless the database's schema is this version's."""
    status = backend.schema_status()
    if status.up_to_date:
        return
    if status.current is None:
        missing = ("has no agenttier-router schema (an empty database, or one the Go "
                   "Router wrote)")
    else:
        missing = (f"has schema revision {status.current}, behind this version's "
                   f"{status.head}")
    raise click.ClickException(
        f"{backend.url} {missing}; reading commands never change a schema: run "
        "'agenttier-router db upgrade' (with the same --dsn) to create or upgrade it"
    )
