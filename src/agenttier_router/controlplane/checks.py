"""The checks every control plane makes on what it is asked, before it acts.

Each raises :class:`~.base.InvalidRequest` with a message that names the value.
"""

from __future__ import annotations

import math
import re

from .base import InvalidRequest

__all__ = ["check_command", "check_identity", "check_label", "check_timeout"]

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1123, at most 63 chars
_MAX_TIMEOUT = 3600.0
_MAX_IDENTITY = 255
# Linux refuses a single argument of 128 KiB or more (MAX_ARG_STRLEN) with E2BIG.
_MAX_COMMAND_BYTES = 128 * 1024 - 1


def check_label(value: object, what: str) -> None:
    """Refuse ``value`` unless it is an RFC 1123 label (a name or a namespace)."""
    if not isinstance(value, str) or _LABEL.fullmatch(value) is None:
        raise InvalidRequest(
            f"{what} must be an RFC 1123 label: 1-63 lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit (got {value!r})"
        )


def check_identity(identity: object) -> None:
    """Refuse an identity to share with that is blank or longer than 255 characters."""
    if not isinstance(identity, str) or not identity.strip() or len(identity) > _MAX_IDENTITY:
        raise InvalidRequest(
            f"identity must be a non-blank string of at most {_MAX_IDENTITY} characters"
        )


def check_command(command: object) -> None:
    """Refuse a command that is empty, holds NUL, is not Unicode or is over 128 KiB."""
    if not isinstance(command, str) or not command.strip():
        raise InvalidRequest("command must be a non-empty string")
    if "\x00" in command:
        raise InvalidRequest("command must not contain a NUL character")
    try:
        size = len(command.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise InvalidRequest("command must be valid Unicode text") from error
    if size > _MAX_COMMAND_BYTES:
        raise InvalidRequest(f"command is too long: {size} bytes (at most {_MAX_COMMAND_BYTES})")


def check_timeout(timeout: object) -> None:
    """Refuse an exec timeout outside (0, 3600] seconds."""
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not math.isfinite(timeout) or not 0 < timeout <= _MAX_TIMEOUT):
        raise InvalidRequest(f"timeout must be a number of seconds in (0, 3600] (got {timeout!r})")
