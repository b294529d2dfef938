"""``agenttier-router records`` on every backend: formats, filters, paging, cost totals."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cli_helpers import AUDIT, LONG_DETAILS, ago, run, seed, touch_sqlite_file, write

from agenttier_router.storage import AuditEvent

AUDIT_FIELDS = [
    "time", "actor", "action", "resource", "sandbox_id", "namespace", "outcome", "details",
    "event_id",
]


def ids(out: str) -> list[str]:
    """The event ids of a JSON listing, in the order printed."""
    return [row["event_id"] for row in json.loads(out)]


@pytest.fixture
def seeded(store_url: str) -> str:
    """The URL of a fresh database on each backend, holding the seed records."""
    return seed(store_url)


def test_audit_as_json_has_every_field_newest_first(seeded: str) -> None:
    result = run("records", "audit", "--dsn", seeded, "--format", "json")

    assert result.code == 0, result.stderr
    assert result.stderr == ""
    rows = json.loads(result.stdout)
    assert [row["event_id"] for row in rows] == ["a1", "a2", "a3", "a4"]
    assert list(rows[0]) == AUDIT_FIELDS
    first = rows[0]
    assert first["time"].endswith("Z")
    assert datetime.fromisoformat(first["time"]) == AUDIT["a1"].time
    assert first["details"] == LONG_DETAILS  # untruncated outside the table
    assert rows[1]["details"] == '{"command":"ls"}'
    assert (rows[1]["actor"], rows[1]["outcome"]) == ("bob", "denied")
    assert rows[2]["resource"] == "template"


def test_audit_as_csv_has_a_header_row(seeded: str) -> None:
    result = run("records", "audit", "--dsn", seeded, "--format", "csv")

    assert result.code == 0, result.stderr
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == AUDIT_FIELDS
    rows = list(reader)
    assert [row["event_id"] for row in rows] == ["a1", "a2", "a3", "a4"]
    assert rows[0]["details"] == LONG_DETAILS
    assert datetime.fromisoformat(rows[3]["time"]) == AUDIT["a4"].time
    assert rows[2]["namespace"] == "ns-a"


def test_audit_as_table_is_aligned_and_cuts_long_details(seeded: str) -> None:
    result = run("records", "audit", "--dsn", seeded)

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5  # header and four rows: the newline in details did not split a row
    assert lines[0].split() == [
        "TIME", "ACTOR", "ACTION", "RESOURCE", "SANDBOX_ID", "NAMESPACE", "OUTCOME", "DETAILS",
    ]
    assert [line.split()[1] for line in lines[1:]] == ["alice", "bob", "alice", "carol"]
    # Columns line up: every row's ACTION starts where the header's does.
    column = lines[0].index("ACTION")
    assert [line[column:].split()[0] for line in lines[1:]] == ["create", "exec", "delete", "exec"]
    assert "first line second line xxx" in lines[1]
    assert lines[1].endswith("...")
    assert "x" * 100 not in result.stdout
    assert "event_id" not in result.stdout.lower()
    assert lines[4].split()[0] == AUDIT["a4"].time.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


AUDIT_FILTERS = [
    (["--actor", "alice"], ["a1", "a3"]),
    (["--sandbox", "sb-2"], ["a2", "a3"]),
    (["--action", "exec"], ["a2", "a4"]),
    (["--resource", "template"], ["a3"]),
    (["--namespace", "ns-b"], ["a2", "a4"]),
    (["--outcome", "denied"], ["a2"]),
    (["--actor", "alice", "--outcome", "error"], ["a3"]),
    (["--actor", "nobody"], []),
    (["--since", "30m"], ["a1"]),
    (["--since", "3h"], ["a1", "a2"]),
    (["--since", "4d"], ["a1", "a2", "a3"]),
    (["--since", "2w"], ["a1", "a2", "a3"]),
    (["--since", "3w"], ["a1", "a2", "a3", "a4"]),
    (["--since", "1d", "--until", "30m"], ["a2"]),
    (["--until", "7d"], ["a4"]),
    (["--since", "7200s", "--until", "1m"], ["a1"]),
]


def test_every_audit_filter(seeded: str) -> None:
    for flags, expected in AUDIT_FILTERS:
        result = run("records", "audit", "--dsn", seeded, "--format", "json", *flags)
        assert result.code == 0, (flags, result.stderr)
        assert ids(result.stdout) == expected, flags


def test_rfc3339_bounds_take_any_zone_since_inclusive_until_exclusive(
    seeded: str
) -> None:
    a2 = AUDIT["a2"].time.astimezone(timezone(timedelta(hours=2)))
    assert a2.isoformat().endswith("+02:00")

    since = run("records", "audit", "--dsn", seeded, "--format", "json", "--since", a2.isoformat())
    until = run("records", "audit", "--dsn", seeded, "--format", "json", "--until", a2.isoformat())
    zulu = AUDIT["a3"].time.isoformat().replace("+00:00", "Z")
    exact = run("records", "audit", "--dsn", seeded, "--format", "json", "--since", zulu)

    assert ids(since.stdout) == ["a1", "a2"]
    assert ids(until.stdout) == ["a3", "a4"]
    assert ids(exact.stdout) == ["a1", "a2", "a3"]


def test_sandbox_events_filters_and_table(seeded: str) -> None:
    cases = [
        ([], ["s1", "s2", "s3"]),
        (["--sandbox", "sb-1"], ["s1", "s2"]),
        (["--namespace", "ns-b"], ["s3"]),
        (["--phase", "Failed"], ["s3"]),
        (["--since", "1h"], ["s1", "s2"]),
        (["--until", "1d"], ["s3"]),
        (["--sandbox", "sb-1", "--phase", "Running"], ["s1"]),
    ]
    for flags, expected in cases:
        result = run("records", "sandbox-events", "--dsn", seeded, "--format", "json", *flags)
        assert result.code == 0, (flags, result.stderr)
        assert ids(result.stdout) == expected, flags

    table = run("records", "sandbox-events", "--dsn", seeded)
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "TIME", "SANDBOX_ID", "SANDBOX_NAME", "NAMESPACE", "PHASE", "REASON", "MESSAGE",
    ]
    assert lines[1].split()[1:] == [
        "sb-1", "box-one", "ns-a", "Running", "Started", "container", "started",
    ]
    assert len(lines) == 4

    rows = list(csv.DictReader(io.StringIO(run("records", "sandbox-events", "--dsn", seeded,
                                               "--format", "csv").stdout)))
    assert [(r["event_id"], r["phase"], r["message"]) for r in rows] == [
        ("s1", "Running", "container started"),
        ("s2", "Pending", ""),
        ("s3", "Failed", "out of memory"),
    ]


def test_cost_snapshots_in_every_format(seeded: str) -> None:
    result = run("records", "costs", "--dsn", seeded, "--format", "json")
    rows = json.loads(result.stdout)
    assert [row["event_id"] for row in rows] == ["c1", "c2", "c3", "c4"]
    assert rows[0] | {"time": None} == {
        "time": None, "sandbox_id": "sb-1", "namespace": "ns-a", "cpu_hours": 1.5,
        "mem_gb_hours": 2.0, "estimated_usd": 0.25, "event_id": "c1",
    }

    filtered = [
        (["--sandbox", "sb-1"], ["c1", "c2"]),
        (["--namespace", "ns-a"], ["c1", "c2", "c4"]),
        (["--since", "150m"], ["c1", "c2"]),
        (["--namespace", "ns-a", "--until", "1d"], ["c4"]),
    ]
    for flags, expected in filtered:
        out = run("records", "costs", "--dsn", seeded, "--format", "json", *flags)
        assert ids(out.stdout) == expected, flags

    rows = list(csv.DictReader(io.StringIO(run("records", "costs", "--dsn", seeded, "--format",
                                               "csv").stdout)))
    assert [(r["sandbox_id"], float(r["cpu_hours"]), float(r["estimated_usd"])) for r in rows] == [
        ("sb-1", 1.5, 0.25), ("sb-1", 0.5, 0.75), ("sb-2", 4.0, 2.0), ("sb-3", 0.25, 0.5),
    ]

    table = run("records", "costs", "--dsn", seeded).stdout.splitlines()
    assert table[0].split() == [
        "TIME", "SANDBOX_ID", "NAMESPACE", "CPU_HOURS", "MEM_GB_HOURS", "ESTIMATED_USD",
    ]
    assert table[3].split()[1:] == ["sb-2", "ns-b", "4.000000", "8.000000", "2.000000"]
    # Numbers are right-aligned: they end where their header ends.
    assert table[1].rstrip().endswith("0.250000") and len(table[1]) == len(table[0])


def test_costs_group_by_prints_totals(seeded: str) -> None:
    by_sandbox = json.loads(
        run("records", "costs", "--dsn", seeded, "--group-by", "sandbox", "--format", "json").stdout
    )
    assert by_sandbox == [
        {"sandbox": "ns-b/sb-2", "cpu_hours": 4.0, "mem_gb_hours": 8.0, "estimated_usd": 2.0,
         "samples": 1},
        {"sandbox": "ns-a/sb-1", "cpu_hours": 2.0, "mem_gb_hours": 3.0, "estimated_usd": 1.0,
         "samples": 2},
        {"sandbox": "ns-a/sb-3", "cpu_hours": 0.25, "mem_gb_hours": 0.5, "estimated_usd": 0.5,
         "samples": 1},
    ]

    by_namespace = run("records", "costs", "--dsn", seeded, "--group-by", "namespace")
    assert by_namespace.code == 0, by_namespace.stderr
    lines = by_namespace.stdout.splitlines()
    assert lines[0].split() == [
        "NAMESPACE", "CPU_HOURS", "MEM_GB_HOURS", "ESTIMATED_USD", "SAMPLES",
    ]
    assert [line.split() for line in lines[1:]] == [
        ["ns-b", "4.000000", "8.000000", "2.000000", "1"],
        ["ns-a", "2.250000", "3.500000", "1.500000", "3"],
    ]

    windowed = run("records", "costs", "--dsn", seeded, "--group-by", "namespace",
                   "--since", "7d", "--format", "csv")
    assert list(csv.reader(io.StringIO(windowed.stdout))) == [
        ["namespace", "cpu_hours", "mem_gb_hours", "estimated_usd", "samples"],
        ["ns-b", "4.0", "8.0", "2.0", "1"],
        ["ns-a", "2.0", "3.0", "1.0", "2"],
    ]

    one = run("records", "costs", "--dsn", seeded, "--group-by", "sandbox", "--sandbox", "sb-1",
              "--format", "json")
    assert [(t["sandbox"], t["samples"]) for t in json.loads(one.stdout)] == [("ns-a/sb-1", 2)]


def test_empty_results_in_every_format(store_url: str) -> None:
    touch_sqlite_file(store_url)  # an empty file: reading commands refuse a missing one
    assert run("records", "audit", "--dsn", store_url, "--format", "json").stdout.strip() == "[]"
    assert run("records", "costs", "--dsn", store_url, "--format", "csv").stdout.splitlines() == [
        "time,sandbox_id,namespace,cpu_hours,mem_gb_hours,estimated_usd,event_id",
    ]
    table = run("records", "sandbox-events", "--dsn", store_url)
    assert table.code == 0
    assert table.stdout.split() == [
        "TIME", "SANDBOX_ID", "SANDBOX_NAME", "NAMESPACE", "PHASE", "REASON", "MESSAGE",
    ]


def test_paging_one_page_hints_the_cursor_and_all_follows_every_page(
    store_url: str
) -> None:
    events = [
        AuditEvent(actor="pager", action="exec", time=ago(seconds=i), event_id=f"p{i:02d}")
        for i in range(25)
    ]
    write(store_url, list(events))
    expected = [e.event_id for e in events]  # newest first: p00 is the most recent

    first = run("records", "audit", "--dsn", store_url, "--limit", "10", "--format", "json")
    assert first.code == 0
    assert ids(first.stdout) == expected[:10]
    assert len(first.error_lines) == 1
    hint = first.error_lines[0]
    assert "--cursor" in hint and "--all" in hint
    cursor = hint.split("--cursor ")[1].split(",")[0]

    second = run("records", "audit", "--dsn", store_url, "--limit", "10", "--cursor", cursor,
                 "--format", "json")
    assert ids(second.stdout) == expected[10:20]
    assert len(second.error_lines) == 1

    for fmt in ("json", "csv", "table"):
        everything = run("records", "audit", "--dsn", store_url, "--limit", "10", "--all",
                         "--format", fmt)
        assert everything.code == 0
        assert everything.stderr == "", fmt  # no hint: nothing is left
        if fmt == "json":
            assert ids(everything.stdout) == expected
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(everything.stdout)))
            assert [row["event_id"] for row in rows] == expected
        else:
            assert len(everything.stdout.splitlines()) == 26

    rest = run("records", "audit", "--dsn", store_url, "--limit", "10", "--cursor", cursor, "--all",
               "--format", "json")
    assert ids(rest.stdout) == expected[10:]

    last = run("records", "audit", "--dsn", store_url, "--limit", "25", "--format", "json")
    assert ids(last.stdout) == expected
    assert last.stderr == ""  # exactly one full page: no more pages, no hint


def test_storage_dsn_gives_the_url_when_no_dsn_flag(seeded: str) -> None:
    for command, expected in [
        ("audit", ["a1", "a2", "a3", "a4"]),
        ("sandbox-events", ["s1", "s2", "s3"]),
        ("costs", ["c1", "c2", "c3", "c4"]),
    ]:
        result = run("records", command, "--format", "json", env={"STORAGE_DSN": seeded})
        assert result.code == 0, result.stderr
        assert ids(result.stdout) == expected
