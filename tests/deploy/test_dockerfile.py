"""Lint the Router's Dockerfile as far as a machine without a Docker engine can.

The image cannot be built here; these checks read the file: a pinned base, a
non-root user that matches the chart, the storage extras, and the command line.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from helm_helpers import CHART, ROOT

from agenttier_router.cli.serve import serve

DOCKERFILE = ROOT / "Dockerfile"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


INSTRUCTIONS = _instructions(DOCKERFILE)


def _all(keyword: str) -> list[str]:
    return [arguments for key, arguments in INSTRUCTIONS if key == keyword]


def _base_images() -> list[str]:
    stages: set[str] = set()
    images = []
    for arguments in _all("FROM"):
        words = arguments.split()
        if words[0] not in stages:  # FROM <earlier stage> is not a base image
            images.append(words[0])
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
    return images


def test_every_base_image_is_pinned_to_a_version_and_digest() -> None:
    images = _base_images()
    assert images
    for image in images:
        match = re.fullmatch(r"(?P<name>[\w./-]+):(?P<tag>[\w.-]+)@sha256:[0-9a-f]{64}", image)
        assert match, f"{image}: not name:tag@sha256:digest"
        assert match["name"] == "python", image
        tag = match["tag"]
        assert tag != "latest"
        assert re.match(r"3\.\d+\.\d+-slim", tag), f"{image}: not a full Python version, slim"
    assert len(set(images)) == 1, "build and runtime stages must share the Python they run"


def test_image_runs_as_a_numeric_non_root_user_the_chart_also_uses() -> None:
    users = _all("USER")
    assert users, "no USER: the image would run as root"
    final = users[-1]
    user, _, group = final.partition(":")
    assert user not in {"root", "0"} and group not in {"root", "0"}
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot check it"
    pod = yaml.safe_load((CHART / "values.yaml").read_text())["router"]["podSecurityContext"]
    assert int(user) == pod["runAsUser"]
    # Nothing runs as root after the switch.
    after = [key for key, _ in INSTRUCTIONS[_last_index("USER"):]]
    assert "RUN" not in after


def _last_index(keyword: str) -> int:
    return max(i for i, (key, _) in enumerate(INSTRUCTIONS) if key == keyword)


def test_installs_the_project_with_the_postgres_mysql_and_kubernetes_extras() -> None:
    installs = [run for run in _all("RUN") if "pip install" in run]
    assert any("'.[postgres,mysql,kubernetes]'" in run for run in installs), installs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert {"postgres", "mysql"} <= set(extras)


def test_command_is_serve_on_all_interfaces_port_8080() -> None:
    (entrypoint,) = _all("ENTRYPOINT")
    (cmd,) = _all("CMD")
    argv = json.loads(entrypoint) + json.loads(cmd)  # exec form: JSON arrays
    program = argv.index("agenttier-router")
    assert argv[program + 1:] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    context = serve.make_context("serve", argv[program + 2:])
    assert (context.params["host"], context.params["port"]) == ("0.0.0.0", 8080)
    assert _all("EXPOSE") == ["8080"]


@pytest.mark.parametrize("source", ["pyproject.toml", "README.md", "src"])
def test_dockerignore_keeps_what_the_build_copies(source: str) -> None:
    copied = " ".join(_all("COPY"))
    assert source in copied
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert f"!{source}" in lines or f"!{source}/" in lines


def test_dockerignore_leaves_out_the_local_virtualenv_and_git() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*", "an allow-list: everything is ignored unless named"
    assert not any(line.lstrip("!").startswith((".venv", ".git")) for line in lines[1:])
