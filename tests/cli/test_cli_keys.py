"""A keys-file entry with a control character is refused at load, naming the entry (issue 9, 16).

``al\\0ice`` used to load, then be stored as ``alice``: another actor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import free_port, serve_once

from agenttier_router.api.auth import load_keys

GOOD = {"key": "good-key-0123456789abcdef", "subject": "bob", "email": "bob@example.com",
        "groups": ["eng"]}
KEY = "alice-key-0123456789abcdef"


@pytest.mark.parametrize(("field", "value"), [
    ("subject", "al\0ice"),
    ("subject", "alice\x1b[2J"),
    ("subject", "alice\x85"),
    ("subject", "\u202eecila"),
    ("email", "alice@example.com\n"),
    ("name", "Alice\u2066"),
    ("groups", ["eng", "agenttier-admins\0"]),
    ("key", KEY[:-1] + "\x7f"),
])
def test_a_control_character_in_any_field_is_refused(
    tmp_path: Path, field: str, value: object
) -> None:
    entry: dict[str, object] = {"key": KEY, "subject": "alice", "email": "a@example.com",
                                "groups": ["eng"]}
    entry[field] = value
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([GOOD, entry]), encoding="utf-8")

    with pytest.raises(ValueError, match="control character") as caught:
        load_keys(path, "agenttier-admins")

    message = str(caught.value)
    assert f"{path}, entry 1" in message
    assert repr(field) in message
    assert KEY[:-1] not in message  # the key is never shown


def test_clean_entries_still_load(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([GOOD, {"key": KEY, "subject": "Ålice Ünïcode",
                                       "name": "Ålice", "groups": ["acme/devs"]}]),
                    encoding="utf-8")
    store = load_keys(path, "agenttier-admins")
    identity = store.identify(KEY)
    assert identity is not None and identity.subject == "Ålice Ünïcode"


def test_serve_refuses_the_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f'- key: {KEY}\n  subject: "al\\0ice"\n', encoding="utf-8")

    result = serve_once(tmp_path, "--api-keys", str(path), "--port", str(free_port()), timeout=20)

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{path}, entry 0" in lines[0] and "'subject'" in lines[0]
    assert "U+0000" in lines[0]
