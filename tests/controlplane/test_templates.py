"""Templates: the defaults, and loading a YAML or JSON templates file over them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agenttier_router.controlplane import (
    DEFAULT_TEMPLATES,
    InvalidRequest,
    Template,
    load_templates,
)

GIB = 2**30


def test_defaults() -> None:
    assert set(DEFAULT_TEMPLATES) == {"general-coding", "minimal"}
    coding, minimal = DEFAULT_TEMPLATES["general-coding"], DEFAULT_TEMPLATES["minimal"]
    assert (coding.name, coding.cpu, coding.memory_gib) == ("general-coding", 0.5, 1.0)
    assert (minimal.name, minimal.cpu, minimal.memory_gib) == ("minimal", 0.25, 0.25)
    assert coding.description and minimal.description
    with pytest.raises(TypeError):
        DEFAULT_TEMPLATES["minimal"] = coding  # type: ignore[index]


def test_a_file_overrides_and_adds_by_name(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(
        "- name: minimal\n"
        "  cpu: 0.5\n"
        "  memory: 512Mi\n"
        "- name: big\n"
        "  cpu: '2'\n"
        "  memory: 4Gi\n"
        "  description: For builds\n"
        "  image: python:3.12\n"
    )
    templates = load_templates(path)
    assert templates == {
        "general-coding": DEFAULT_TEMPLATES["general-coding"],
        "minimal": Template(name="minimal", cpu=0.5, memory_gib=0.5),
        "big": Template(name="big", cpu=2.0, memory_gib=4.0, description="For builds",
                        image="python:3.12"),
    }
    assert DEFAULT_TEMPLATES["minimal"].cpu == 0.25  # the defaults are untouched


def test_json_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps([{"name": "gpu-less", "cpu": 4, "memory": 8}]))
    assert load_templates(str(path))["gpu-less"] == Template("gpu-less", 4.0, 8.0)


def test_an_empty_list_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("[]\n")
    assert load_templates(path) == dict(DEFAULT_TEMPLATES)


@pytest.mark.parametrize(("memory", "gib"), [
    pytest.param("1Gi", 1.0, id="Gi"),
    pytest.param("256Mi", 0.25, id="Mi"),
    pytest.param("1048576Ki", 1.0, id="Ki"),
    pytest.param("1Ti", 1024.0, id="Ti"),
    pytest.param("512M", 512e6 / GIB, id="M"),
    pytest.param("2G", 2e9 / GIB, id="G"),
    pytest.param("1.5Gi", 1.5, id="decimal"),
    pytest.param(".5Gi", 0.5, id="leading-dot"),
    pytest.param("1e9", 1e9 / GIB, id="exponent"),
    pytest.param("1073741824", 1.0, id="bytes"),
    pytest.param(1.5, 1.5, id="number-of-GiB"),
    pytest.param(2, 2.0, id="int-of-GiB"),
])
def test_memory_quantities(tmp_path: Path, memory: object, gib: float) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"name": "t", "cpu": 1, "memory": memory}]))
    assert load_templates(path)["t"].memory_gib == gib


@pytest.mark.parametrize(("cpu", "vcpu"), [
    pytest.param(0.5, 0.5, id="float"), pytest.param(3, 3.0, id="int"),
    pytest.param("500m", 0.5, id="millicores"), pytest.param("1.5", 1.5, id="str"),
])
def test_cpu(tmp_path: Path, cpu: object, vcpu: float) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"name": "t", "cpu": cpu, "memory": "1Gi"}]))
    assert load_templates(path)["t"].cpu == vcpu


@pytest.mark.parametrize(("content", "message"), [
    pytest.param("", "must hold a list of templates, not NoneType", id="empty-file"),
    pytest.param("name: big\ncpu: 1\n", "must hold a list of templates, not dict", id="mapping"),
    pytest.param("[", "cannot read it", id="bad-yaml"),
    pytest.param("- just-a-name\n", "entry 0: must be a mapping", id="entry-not-a-mapping"),
    pytest.param("- {cpu: 1, memory: 1Gi}\n", "entry 0: name is required", id="no-name"),
    pytest.param("- {name: '', cpu: 1, memory: 1Gi}\n", "entry 0: name is required",
                 id="empty-name"),
    pytest.param("- {name: ' x', cpu: 1, memory: 1Gi}\n", "entry 0: name is required",
                 id="padded-name"),
    pytest.param("- {name: a, memory: 1Gi}\n", r"entry 0 \('a'\): cpu must be", id="no-cpu"),
    pytest.param("- {name: a, cpu: 0, memory: 1Gi}\n", r"entry 0 \('a'\): cpu must be",
                 id="zero-cpu"),
    pytest.param("- {name: a, cpu: -1, memory: 1Gi}\n", "cpu must be", id="negative-cpu"),
    pytest.param("- {name: a, cpu: true, memory: 1Gi}\n", "cpu must be", id="bool-cpu"),
    pytest.param("- {name: a, cpu: .nan, memory: 1Gi}\n", "cpu must be", id="nan-cpu"),
    pytest.param("- {name: a, cpu: lots, memory: 1Gi}\n", "cpu must be", id="word-cpu"),
    pytest.param("- {name: a, cpu: 1}\n", "memory must be", id="no-memory"),
    pytest.param("- {name: a, cpu: 1, memory: 1GB}\n", "got '1GB'", id="GB-is-not-k8s"),
    pytest.param("- {name: a, cpu: 1, memory: 500m}\n", "memory must be", id="milli-bytes"),
    pytest.param("- {name: a, cpu: 1, memory: -1Gi}\n", "memory must be", id="negative"),
    pytest.param("- {name: a, cpu: 1, memory: 0Gi}\n", "memory must be", id="zero"),
    pytest.param("- {name: a, cpu: 1, memory: 1 Gi}\n", "memory must be", id="space"),
    pytest.param("- {name: a, cpu: 1, memory: 1Gi, memroy: 2Gi}\n", r"unknown field\(s\)",
                 id="typo-field"),
    pytest.param("- {name: a, cpu: 1, memory: 1Gi, image: 3}\n", "image must be a string",
                 id="image-not-a-str"),
    pytest.param("- {name: a, cpu: 1, memory: 1Gi}\n- {name: a, cpu: 2, memory: 2Gi}\n",
                 "entry 1: duplicate name 'a'", id="duplicate"),
])
def test_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(InvalidRequest, match=message) as caught:
        load_templates(path)
    assert str(path) in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="cannot read it"):
        load_templates(tmp_path / "nope.yaml")
