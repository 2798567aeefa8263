"""The examples run as printed, against the live gateway (address via --server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

from conftest import DEMO_IDS, Live

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(example: str, args: List[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args], capture_output=True, text=True, timeout=60
    )


def test_invoke_example(live: Live) -> None:
    p = run("invoke.py", ["--server", live.address])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hi\n"


def test_invoke_example_reports_the_reason(live: Live) -> None:
    p = run("invoke.py", ["--server", live.address, "no-such-device", "echo"])
    assert p.returncode == 1
    assert p.stderr.startswith("thingcall: DEVICE_NOT_FOUND: ")


def test_async_invoke_example(live: Live) -> None:
    p = run("async_invoke.py", ["--server", live.address])
    assert p.returncode == 0, p.stderr
    assert [line.split(" (")[0] for line in p.stdout.splitlines()] == [f"{d}: hello {d}" for d in DEMO_IDS]


def test_watch_example(live: Live) -> None:
    p = run("watch.py", ["--server", live.address, "--count", str(len(DEMO_IDS) + 1), "demo-*"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == f"-- {len(DEMO_IDS)} devices now; changes follow"
    assert sorted(line.split(":")[0] for line in lines[:-1]) == list(DEMO_IDS)


def test_invoke_many_example(live: Live) -> None:
    p = run("invoke_many.py", ["--server", live.address, "--pattern", "demo-*", "echo", "hi"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert sorted(lines[:-1]) == [f"{d}: OK hi" for d in DEMO_IDS]
    assert lines[-1] == "-- COMPLETED: 3 of 3 called, 3 OK, 0 failed, 0 not called"


def test_invoke_many_example_aborts(live: Live) -> None:
    targets = ",".join(DEMO_IDS)
    # `fail` answers 500 with the payload it got; ratio 0 stops at the first failure.
    p = run("invoke_many.py", ["--server", live.address, "--targets", targets, "--concurrency", "1", "--abort", "0:1", "fail", "no"])
    assert p.returncode == 1, p.stderr
    assert p.stdout.splitlines() == ["demo-1: DEVICE_STATUS_500 no", "-- ABORTED: 1 of 3 called, 0 OK, 1 failed, 2 not called"]
