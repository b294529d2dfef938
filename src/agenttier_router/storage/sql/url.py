"""Storage URLs: which scheme opens which backend, and how a URL is shown safely.

``sqlite:///relative.db``, ``sqlite:////abs/path.db`` and ``sqlite://`` (memory)
open SQLite; ``postgresql://``, ``postgres://`` and ``postgresql+psycopg://``
open PostgreSQL through psycopg 3; ``mysql://``, ``mariadb://`` and
``mysql+pymysql://`` open MySQL or MariaDB through PyMySQL.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import InvalidURL

__all__ = [
    "FORMS", "SCHEMES", "invalid_url", "mask_secrets", "mask_url", "parse_url", "sqlite_path",
]

SCHEMES: dict[str, tuple[str, str]] = {
    "sqlite": ("sqlite", "sqlite+pysqlite"),
    "sqlite+pysqlite": ("sqlite", "sqlite+pysqlite"),
    "postgresql": ("postgresql", "postgresql+psycopg"),
    "postgres": ("postgresql", "postgresql+psycopg"),
    "postgresql+psycopg": ("postgresql", "postgresql+psycopg"),
    "mysql": ("mysql", "mysql+pymysql"),
    "mariadb": ("mysql", "mysql+pymysql"),
    "mysql+pymysql": ("mysql", "mysql+pymysql"),
    "mariadb+pymysql": ("mysql", "mysql+pymysql"),
}
"""URL scheme -> (backend kind, the SQLAlchemy driver name it is opened with)."""


FORMS = {
    "sqlite": "sqlite:///relative/file.db, sqlite:////absolute/file.db or sqlite:// (in memory)",
    "postgresql": "postgresql://user[:password]@host[:port]/database",
    "mysql": "mysql://user[:password]@host[:port]/database",
}
"""Backend kind -> the URL forms it takes, as error messages name them."""


def invalid_url(kind: str, scheme: str, problem: str) -> InvalidURL:
    """An :class:`InvalidURL` for a ``scheme://`` URL with ``problem``, naming the forms."""
    return InvalidURL(f"malformed {scheme}:// storage URL: {problem}; expected {FORMS[kind]}")


def parse_url(url: str) -> tuple[str, URL]:
    """Return (backend kind, SQLAlchemy URL) for a storage URL.

    Raises :class:`InvalidURL`, whose one line names the forms expected, for
    a URL that cannot be parsed or names an unknown scheme, and for a SQLite
    URL with a host (``sqlite://agenttier.db``: two slashes, not three). The
    message never repeats the URL, which may hold a password.
    """
    url = url.strip()
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme.lower() not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        raise InvalidURL(
            f"unsupported storage URL scheme: {shown}; use one of {known} "
            f"(e.g. {FORMS['sqlite'].partition(',')[0]} or {FORMS['postgresql']})"
        )
    kind, driver = SCHEMES[scheme.lower()]
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a port that is not a number fails here, not at connect
    except (ArgumentError, ValueError):
        raise invalid_url(kind, scheme, "its host, port or query cannot be read") from None
    parsed = parsed.set(drivername=driver)
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise invalid_url(kind, scheme, f"port {parsed.port} is out of range")
    if kind == "sqlite":
        if parsed.host or parsed.username or parsed.password or parsed.port:
            raise invalid_url(kind, scheme, "it names a host (two slashes, not three?)")
    elif not parsed.database:
        raise invalid_url(kind, scheme, "it names no database")
    return kind, parsed


# user:password@ in scheme://user:password@host. The password stops at the last
# "@" before any "?" or "#", so a query holding an "@" (an e-mail) is not taken.
_USERINFO_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@?#]*:)[^\s?#]*@")
# password=... in a query string (?password=, &sslpassword=) or in a libpq-style
# "key=value" list; the key names a secret when it holds one of these words.
_SECRET_PARAM = re.compile(
    r"""((?:^|(?<=[?&;\s]))[\w.%-]*(?:pass|pwd|secret|token|credential)[\w.%-]*=)"""
    r"""('[^']*'|"[^"]*"|[^&#\s]*)""",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every password a URL in it carries replaced by ``***``.

    Masks the ``user:password@`` part of any ``scheme://`` URL and the value
    of every query or ``key=value`` parameter whose key names a secret
    (``password``, ``passwd``, ``pwd``, ``sslpassword``, ``token``, …, in any
    case)::

        >>> mask_secrets("mysql://u@db/x?password=S3cret&charset=utf8")
        'mysql://u@db/x?password=***&charset=utf8'

    This is the one place that decides what a password looks like: every URL
    the package shows (logs, ``/readyz``, CLI messages) goes through it.
    """
    text = _USERINFO_PASSWORD.sub(r"\1***@", text)
    return _SECRET_PARAM.sub(r"\1***", text)


def mask_url(url: str | URL) -> str:
    """Render a storage URL with its passwords replaced by ``***``; safe to log.

    Both ``user:password@`` and secret query parameters are masked
    (see :func:`mask_secrets`): ``mysql://u@db/x?password=S3cret`` shows as
    ``mysql://u@db/x?password=***``. An unparseable URL is rendered as its
    scheme alone.
    """
    if isinstance(url, URL):
        return mask_secrets(url.render_as_string(hide_password=True))
    try:
        return mask_secrets(make_url(url).render_as_string(hide_password=True))
    except (ArgumentError, ValueError):
        return f"{url.partition('://')[0] if '://' in url else '?'}://<unparseable>"


def sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite://`` URL names, or None for any other URL or an in-memory one.

    Raises :class:`InvalidURL` as :func:`parse_url` does.
    """
    kind, parsed = parse_url(url)
    if kind != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)
