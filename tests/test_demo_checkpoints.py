"""The demo's own witness of the audit chain (fakeconnvo/demo.py): what the systemd timer does in
production."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError

from audit.models import Action, AuditEntry, ChainCheckpoint
from audit.services import Origin, record
from fakeconnvo.demo import witness_the_chain


@pytest.mark.django_db(transaction=True)
def test_the_demo_keeps_witnessing_the_chain_while_it_runs(agent):
    """`make demo` runs no systemd timer: its own thread writes a checkpoint every interval, so
    the audit pages' chain-health panel does not go stale after ten minutes."""
    record(origin=Origin.for_command(agent), action=Action.LOOKUP, meeting_id="m1")
    stop = threading.Event()
    thread = witness_the_chain(0.05, stop)
    try:
        deadline = time.monotonic() + 10
        while _checkpoints_while_the_thread_writes() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)

    assert not thread.is_alive()
    assert ChainCheckpoint.objects.count() >= 2
    assert ChainCheckpoint.objects.latest("at").entries == AuditEntry.objects.count()


def _checkpoints_while_the_thread_writes() -> int:
    """The count, or 0 while the witness thread holds the table. The suite's SQLite database is
    in memory with a shared cache, where a reader meets a writer's table lock at once
    ("database table is locked") instead of waiting out the busy timeout as the demo's file
    database does."""
    try:
        return ChainCheckpoint.objects.count()
    except OperationalError as error:
        if "locked" not in str(error):
            raise
        return 0
