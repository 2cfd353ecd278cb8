"""The demo's own witness of the audit chain (fakeconnvo/demo.py): what the systemd timer does in
production."""

from __future__ import annotations

import io
import threading
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.chain_health import Colour, chain_health
from audit.models import Action, AuditEntry, ChainCheckpoint, ChainVerification
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


@pytest.mark.django_db(transaction=True)
def test_the_demos_chain_panel_stays_green_while_it_runs(agent, settings):
    """README: the demo's audit pages "stay current". Checkpoints alone turned the panel amber
    ("Chain not fully verified") once the verification at start no longer reached a recent
    checkpoint: the thread also verifies from the last verified checkpoint, as production's
    daily `audit_verify --since-checkpoint` does."""
    settings.AUDIT_CHECKPOINT_INTERVAL = 1  # "recent": the last 2 s
    call_command("audit_verify", stdout=io.StringIO())
    stop = threading.Event()
    thread = witness_the_chain(0.2, stop)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # lookups keep coming, past twice the interval
            record(origin=Origin.for_command(agent), action=Action.LOOKUP, meeting_id="m1")
            time.sleep(0.1)
        time.sleep(0.5)  # the last lookups verified too
    finally:
        stop.set()
        thread.join(5)

    health = chain_health(now=timezone.now())
    assert health.colour == Colour.GREEN, health
    assert ChainVerification.objects.filter(ok=True).count() >= 3
