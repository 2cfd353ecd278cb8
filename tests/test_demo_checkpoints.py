"""The demo's own witness of the audit chain (fakeconnvo/demo.py): what the systemd timer does in
production."""

from __future__ import annotations

import threading
import time

import pytest

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
        while ChainCheckpoint.objects.count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)

    assert not thread.is_alive()
    assert ChainCheckpoint.objects.count() >= 2
    assert ChainCheckpoint.objects.latest("at").entries == AuditEntry.objects.count()
