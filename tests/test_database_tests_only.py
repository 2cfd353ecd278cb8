"""`--database-tests-only` (tests/conftest.py), which `make test` gives its PostgreSQL run: it
leaves out only tests that cannot reach the run's database. Every database test, and every test
that runs on one database only, stays."""

from __future__ import annotations

import subprocess
import sys

from tests.production import ROOT


def collected(*options: str) -> set[str]:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    command += ["-m", "not browser", "--ignore=tests/browser", *options]
    result = subprocess.run(  # noqa: S603 (the test's own command line)
        command,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_only_tests_that_cannot_reach_the_database_are_left_out():
    everything = collected()
    kept = collected("--database-tests-only")
    left_out = everything - kept
    assert kept < everything and left_out

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
