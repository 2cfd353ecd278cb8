"""A checkpoint (audit/chain.py `emit_checkpoint`) is shown on the audit pages as "witnessed
outside the database" only once every witness configured has it: the JSON log, and
AUDIT_CHECKPOINT_FILE when set. One that could not be appended to the file is not stored, and the
command says so (exit status 1)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit import chain
from audit.models import ChainCheckpoint, ChainVerification

pytestmark = pytest.mark.django_db

WITNESSED = "witnessed outside the database"


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def unwritable(settings, tmp_path) -> str:
    """A checkpoint file that cannot be appended to (its directory does not exist)."""
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "missing-directory" / "checkpoints.jsonl")
    return settings.AUDIT_CHECKPOINT_FILE


def audit_page(client) -> str:
    response = client.get(reverse("audit:list"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_checkpoint_the_file_did_not_take_is_not_said_to_be_witnessed(
    audit_entry, unwritable, auditor_client
):
    audit_entry()

    with pytest.raises(Exception, match="Could not append to AUDIT_CHECKPOINT_FILE"):
        call_command("audit_checkpoint", stdout=io.StringIO())

    assert not ChainCheckpoint.objects.exists()
    page = audit_page(auditor_client)
    assert WITNESSED not in page
    assert "No checkpoint witnessed yet." in page


def test_verify_records_its_result_but_not_a_checkpoint_the_file_did_not_take(
    audit_entry, unwritable, auditor_client
):
    audit_entry()

    with pytest.raises(Exception, match="Could not append to AUDIT_CHECKPOINT_FILE"):
        call_command("audit_verify", stdout=io.StringIO(), stderr=io.StringIO())

    assert ChainVerification.objects.get().ok
    assert not ChainCheckpoint.objects.exists()
    assert WITNESSED not in audit_page(auditor_client)


def test_a_checkpoint_the_file_took_is_stored_and_shown(
    audit_entry, settings, tmp_path, auditor_client
):
    entry = audit_entry()
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")

    status, out, _ = run("audit_checkpoint")

    assert status == 0
    assert f"Checkpoint at entry #{entry.pk}" in out
    line = (tmp_path / "checkpoints.jsonl").read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line)["last_id"] == entry.pk
    assert ChainCheckpoint.objects.get().last_entry_id == entry.pk
    assert WITNESSED in audit_page(auditor_client)


def test_a_line_cut_short_earlier_does_not_swallow_the_next_checkpoint(
    audit_entry, settings, tmp_path
):
    """A full disk can leave half a line behind; the next checkpoint starts a line of its own."""
    audit_entry()
    path = tmp_path / "checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_FILE = str(path)
    path.write_text('{"type": "audit_checkpoint", "last_id": 4')

    checkpoint = chain.checkpoint_now()

    lines = path.read_text().splitlines()
    assert lines[-1] == checkpoint.line()
    assert chain.Checkpoint.from_line(lines[-1]) == checkpoint
