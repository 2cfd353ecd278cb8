"""`--database-tests-only` (tests/conftest.py), which `make test` gives its PostgreSQL run: it
leaves out only tests that cannot reach the run's database. Every database test, and every test
that runs on one database only, stays."""

from __future__ import annotations

import subprocess
import sys

from tests.production import ROOT


def collected(*options: str) -> tuple[set[str], set[str]]:
    """The tests one collection keeps, and those it leaves out (`tests/listing_deselected.py`)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
    ]
    command += ["-p", "tests.listing_deselected", "--ignore=tests/browser", *options]
    result = subprocess.run(  # noqa: S603 (the test's own command line)
        command,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "::" in line]
    left_out = {
        line.removeprefix("deselected ") for line in lines if line.startswith("deselected ")
    }
    return {line for line in lines if not line.startswith("deselected ")}, left_out


def test_only_tests_that_cannot_reach_the_database_are_left_out():
    # One collection (a collection of the suite takes several seconds): what the option kept,
    # and what it left out, beside the browser tests `-m` leaves out.
    kept, left_out = collected("-m", "not browser", "--database-tests-only")
    left_out = {test for test in left_out if not test.startswith("tests/browser/")}
    everything = kept | left_out
    assert kept and left_out and not kept & left_out

    def module_kept(name: str) -> bool:
        return {test for test in everything if test.startswith(f"tests/{name}.py::")} <= kept

    # Each runs on PostgreSQL only (a skipif on the engine), without pytest-django's fixtures.
    for name in ("test_audit_spans_kill", "test_deployment", "test_two_hosts"):
        assert module_kept(name), name
    # Database tests, plain and transactional.
    for name in ("test_audit_chain", "test_credentials", "test_push_tables"):
        assert module_kept(name), name
    # Left out: the fake and the clients, which never reach the database.
    assert not {
        t
        for t in kept
        if t.startswith(("tests/test_fakeconnvo.py::", "tests/test_sync_client.py::"))
    }
    assert "tests/test_token_claims.py::test_claims_of_a_token_are_read" in left_out
