"""`audit_verify --checkpoint FILE` (or `-`, standard input) reads witnesses from outside the
database. Input that is not checkpoint text (a byte that is not UTF-8, a binary file, JSON nested
past what can be read) is a witness that does not check out: "NOT VERIFIED" with the reason, exit
status 1, never a traceback."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import chain
from tests.conftest import examples
from tests.production import ROOT, production_env

pytestmark = pytest.mark.django_db


def verify(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def witnessed(audit_entry) -> str:
    """A checkpoint line of the current chain, as AUDIT_CHECKPOINT_FILE holds it."""
    audit_entry()
    return chain.checkpoint_now().line()


def test_a_byte_that_is_not_utf8_is_not_verified(witnessed, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    path.write_bytes(witnessed.encode() + b"\n\xff\xfe garbage\n")

    status, out, err = verify("--checkpoint", str(path))

    assert status == 1
    assert "Audit chain NOT VERIFIED" in err
    assert "Line 2" in err and "not UTF-8 text" in err
    assert "Audit chain OK" not in out


def test_json_nested_too_deep_to_read_is_not_verified(witnessed, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    path.write_text(witnessed + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")

    status, _, err = verify("--checkpoint", str(path))

    assert status == 1
    assert "Audit chain NOT VERIFIED" in err
    assert "nested too deeply" in err


def test_a_binary_file_on_standard_input_is_not_verified(witnessed, monkeypatch):
    # What `python` reads from a pipe in the C locale: bytes that are not UTF-8 become
    # surrogates unless the command reads the bytes itself.
    stdin = io.TextIOWrapper(
        io.BytesIO(witnessed.encode() + b"\n\x7fELF\x02\x01\x01\x00\x00\xff\n"),
        encoding="utf-8",
        errors="surrogateescape",
    )
    monkeypatch.setattr("sys.stdin", stdin)

    status, _, err = verify("--checkpoint", "-")

    assert status == 1
    assert "Audit chain NOT VERIFIED" in err
    assert "standard input" in err


def test_a_nul_byte_is_not_checkpoint_text(witnessed, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    path.write_bytes(witnessed.encode() + b"\n\x00\x00\x00\n")

    status, _, err = verify("--checkpoint", str(path))

    assert status == 1
    assert "Line 2" in err and "NUL" in err


def test_good_checkpoints_from_standard_input_still_verify(witnessed, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(witnessed.encode() + b"\n"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)

    status, out, _ = verify("--checkpoint", "-")

    assert status == 0
    assert "1 witnessed checkpoints found in the chain." in out


def test_a_binary_pipe_in_the_c_locale_gives_a_reason_not_a_traceback():
    """The whole command, as an operator runs it (`… --checkpoint - < some.bin`)."""
    env = production_env(LC_ALL="C", LANG="C")
    result = subprocess.run(
        [sys.executable, "manage.py", "audit_verify", "--checkpoint", "-"],
        cwd=ROOT,
        env=env,
        input=b"\x7fELF\x02\x01\x01\x00\xff\xfe\n\x00\x00\n",
        capture_output=True,
        timeout=120,
    )

    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, stderr
    assert "Audit chain NOT VERIFIED" in stderr
    assert "Traceback" not in stderr


@settings(
    max_examples=examples(40),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(data=b"\xff")
@example(data=b"[" * 50_000)
@example(data=b'{"audit_checkpoint": "' + b"[" * 50_000 + b'"}')
def test_any_bytes_are_verified_refused_or_not_verified(witnessed, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("witness") / "checkpoints.jsonl"
    path.write_bytes(witnessed.encode() + b"\n" + data)

    try:
        status, out, err = verify("--checkpoint", str(path))
    except CommandError:
        return  # e.g. no checkpoint in it
    assert (status, "Audit chain OK") == (0, out[: len("Audit chain OK")]) or (
        status == 1 and "NOT VERIFIED" in err
    )
