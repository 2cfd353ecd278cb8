"""The benches (bench/) still run: each one's --help, and the two that share the most with the
others (bench/live_load.py, whose set-up every bench imports, and bench/push_load.py, which takes
pages and refreshes from bench/audit_volume.py) end to end with the smallest settings.

A bench is run by hand, so a change to a function it imports went unnoticed until someone ran it
(docs/performance.md: push_load broke that way once). These runs print figures that nobody reads
here; what they check is that the bench finishes, and its one count that is not a timing: the
Connvo calls the fake received against the calls the audit log has on record."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bench/bare_proxy.py is the WSGI app live_load serves beside the console, not a script.
BENCHES = sorted(
    path.name
    for path in (ROOT / "bench").glob("*.py")
    if path.name not in {"__init__.py", "bare_proxy.py"}
)
ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")


def run_bench(name: str, *args: str, timeout: float = 240) -> str:
    done = subprocess.run(  # noqa: S603 (the repository's own scripts)
        [sys.executable, f"bench/{name}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"bench/{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_starts_and_says_how_to_run_it(name):
    assert run_bench(name, "--help", timeout=60).startswith("usage: ")


def test_there_are_benches_to_run():
    assert {"live_load.py", "push_load.py", "audit_volume.py"} <= set(BENCHES)


@pytest.mark.skipif(ON_POSTGRES, reason="run once, in the SQLite leg: its own SQLite file")
def test_live_load_runs_and_every_call_it_made_is_on_record():
    out = run_bench(
        "live_load.py",
        "--sqlite",
        "--agents=2",
        "--samples=5",
        "--connections=2",
        "--closed-seconds=0.5",
        "--closed-rounds=1",
        "--rate=10",
        "--duration=1",
        "--skip=overload,slow",
    )
    assert "## closed loop" in out and "## open loop" in out
    calls = re.search(
        r"getMeeting calls at the fake (\d+), calls on record \(.*\) (\d+): (\w+)", out
    )
    assert calls, out[-2000:]
    at_fake, on_record, verdict = int(calls[1]), int(calls[2]), calls[3]
    assert at_fake > 0 and at_fake == on_record and verdict == "equal"


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only, as the bench is: the PostgreSQL leg")
def test_push_load_runs_and_every_answer_connvo_sent_is_on_record():
    out = run_bench(
        "push_load.py",
        "--pages=5",
        "--agents=1",
        "--seconds=1",
        "--interval=1",
        "--changes=1",
        "--workers=1",
        "--push-workers=1",
        "--no-kill",
        "--db-prefix=test_bench_push",
    )
    row = re.search(
        r"\| open, quiet, changes \| (\d+) \(\d+ \+ \d+\) \| (\d+) \| \*\*(\w+)\*\* \|", out
    )
    assert row, out[-2000:]
    assert int(row[1]) > 0 and row[1] == row[2] and row[3] == "equal"
    assert "pages that got nothing within 15 s: 0" in out
