"""`audit_verify --since-checkpoint` (#22): the daily check walks from the newest witnessed
checkpoint an earlier walk verified to the head, not the whole log; what it covered is recorded
for the chain-health panel."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit import chain
from audit.models import ChainVerification
from audit.services import purge_old_entries
from tests.test_audit_chain import rewrite_with_the_key, tamper

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=out)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def witness_file(settings, tmp_path) -> str:
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    return settings.AUDIT_CHECKPOINT_FILE


@pytest.fixture
def verified_then_more(witness_file, audit_entry):
    """Three entries verified by a full walk (which witnessed #3 in the file), then three more."""
    before = [audit_entry(meeting_id=f"old{n}") for n in range(3)]
    assert run()[0] == 0
    after = [audit_entry(meeting_id=f"new{n}") for n in range(3)]
    return before, after


def test_walks_only_the_entries_after_the_checkpoint(verified_then_more):
    before, after = verified_then_more

    status, out = run("--since-checkpoint")

    assert status == 0, out
    assert f"The walk started at entry #{before[-1].pk}" in out
    assert f"3 entries after it verified (#{after[0].pk}\N{EN DASH}#{after[-1].pk})" in out
    assert "(1 witnessed entry up to the walk's start, not read)" in out
    recorded = ChainVerification.objects.order_by("-id").first()
    assert (recorded.from_entry_id, recorded.last_entry_id) == (before[-1].pk, after[-1].pk)
    assert recorded.entries_checked == 3


def test_tampering_before_the_checkpoint_is_not_read(verified_then_more):
    before, _ = verified_then_more
    tamper("UPDATE audit_auditentry SET detail = %s WHERE id = %s", ["rewritten", before[0].pk])

    status, out = run("--since-checkpoint")

    # What the option trades away, said in its message: a full walk still finds it.
    assert status == 0, out
    assert f"The walk started at entry #{before[-1].pk}" in out
    assert "the entries before it were not read this time" in out
    status, out = run()
    assert status == 1
    assert f"Entry #{before[0].pk} does not match its MAC" in out


def test_tampering_after_the_checkpoint_is_found(verified_then_more):
    _, after = verified_then_more
    tamper("UPDATE audit_auditentry SET outcome = %s WHERE id = %s", ["found", after[1].pk])

    status, out = run("--since-checkpoint")

    assert status == 1
    assert f"Entry #{after[1].pk} does not match its MAC" in out
    recorded = ChainVerification.objects.order_by("-id").first()
    assert (recorded.ok, recorded.first_bad_id) == (False, after[1].pk)


def test_a_checkpoint_whose_entry_was_rewritten_is_refused(verified_then_more):
    before, _ = verified_then_more
    tamper("UPDATE audit_auditentry SET mac = %s WHERE id = %s", ["e" * 64, before[-1].pk])

    status, out = run("--since-checkpoint")

    assert status == 1
    assert f"Entry #{before[-1].pk} is not the entry the checkpoint of" in out
    assert "No walk starts from it" in out
    recorded = ChainVerification.objects.order_by("-id").first()
    assert (recorded.ok, recorded.first_bad_id, recorded.entries_checked) == (
        False,
        before[-1].pk,
        0,
    )


def test_without_a_checkpoint_the_whole_chain_is_walked_and_it_says_so(settings, audit_entry):
    settings.AUDIT_CHECKPOINT_FILE = ""
    for _ in range(2):
        audit_entry()

    status, out = run("--since-checkpoint")

    assert status == 0, out
    assert "No checkpoint witnesses an entry of the chain. Walked the whole chain instead." in out
    assert "2 entries verified." in out
    assert ChainVerification.objects.get().from_entry_id is None


def test_a_checkpoint_no_walk_verified_is_not_a_start(witness_file, audit_entry):
    audit_entry()
    call_command("audit_checkpoint", stdout=io.StringIO())  # witnessed, never walked

    status, out = run("--since-checkpoint")

    assert status == 0, out
    assert "No earlier walk verified the chain. Walked the whole chain instead." in out


def test_the_whole_walk_instead_still_holds_the_chain_to_its_witnesses(witness_file, audit_entry):
    """With no walk to start from, the whole chain is walked against the checkpoints read: a
    chain rewritten with the key verifies on its own, and only the witness shows it."""
    entries = [audit_entry() for _ in range(3)]
    call_command("audit_checkpoint", stdout=io.StringIO())  # witnessed, never walked
    rewrite_with_the_key(entries[2], prev_mac=entries[1].mac, meeting_id="other")

    status, out = run("--since-checkpoint")

    assert status == 1, out
    assert "No earlier walk verified the chain. Walked the whole chain instead." in out
    assert f"Entry #{entries[2].pk} is not the entry the checkpoint of" in out
    recorded = ChainVerification.objects.get()
    assert (recorded.ok, recorded.first_bad_id) == (False, entries[2].pk)


def test_checkpoints_only_of_entries_no_walk_verified_are_not_a_start(
    witness_file, settings, tmp_path, audit_entry
):
    verified = [audit_entry() for _ in range(2)]
    assert run()[0] == 0
    audit_entry()
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "newer.jsonl")
    call_command("audit_checkpoint", stdout=io.StringIO())  # the head, which no walk verified

    status, out = run("--since-checkpoint")

    assert status == 0, out
    assert (
        f"No checkpoint witnesses an entry up to #{verified[-1].pk}, where the last successful "
        "walk ended. Walked the whole chain instead. 3 entries verified."
    ) in out


def test_a_walk_of_the_empty_chain_does_not_hide_the_walks_after_it(witness_file, audit_entry):
    """A walk of the chain before its first entry verified through no entry: it is the oldest
    walk, not the one that verified the most (PostgreSQL sorts NULL first in descending order)."""
    assert run()[0] == 0
    before = [audit_entry() for _ in range(2)]
    assert run()[0] == 0
    audit_entry()

    status, out = run("--since-checkpoint")

    assert status == 0, out
    assert f"The walk started at entry #{before[-1].pk}" in out


def test_the_consoles_own_checkpoints_are_its_newest_up_to_the_last_walk(settings, audit_entry):
    settings.AUDIT_CHECKPOINT_FILE = ""
    entries = []
    for _ in range(3):  # each walk stores a checkpoint of the head it verified
        entries.append(audit_entry())
        assert run()[0] == 0
    call_command("audit_checkpoint", stdout=io.StringIO())  # #3 again, later
    entries.append(audit_entry())
    call_command("audit_checkpoint", stdout=io.StringIO())  # #4: no walk verified it

    stored = chain.stored_checkpoints(limit=3)

    assert [(c.last_id, c.entries) for c in stored] == [
        (entries[2].pk, 3),
        (entries[2].pk, 3),
        (entries[1].pk, 2),
    ]
    assert stored[0].at > stored[1].at
    assert [c.last_mac for c in stored] == [entries[2].mac, entries[2].mac, entries[1].mac]


def test_the_consoles_own_checkpoints_are_none_before_a_walk_verified_one(settings, audit_entry):
    settings.AUDIT_CHECKPOINT_FILE = ""
    audit_entry()
    call_command("audit_checkpoint", stdout=io.StringIO())

    assert chain.stored_checkpoints() == []


def test_after_a_break_the_whole_chain_is_walked_again(verified_then_more):
    before, _ = verified_then_more
    tamper("UPDATE audit_auditentry SET detail = %s WHERE id = %s", ["rewritten", before[0].pk])
    assert run()[0] == 1

    status, out = run("--since-checkpoint")

    # Starting after the break would verify only what follows it and turn the panel green.
    assert status == 1
    assert f"The last verification found a broken link at entry #{before[0].pk}" in out


def test_after_a_break_at_no_one_entry_the_whole_chain_is_walked_again(verified_then_more):
    tamper("DELETE FROM audit_chainhead")
    assert run()[0] == 1

    status, out = run("--since-checkpoint")

    assert status == 1
    assert "The last verification found a broken link. Walked the whole chain instead." in out
    assert "The chain head is missing." in out


def test_the_consoles_own_checkpoints_serve_and_it_says_they_are_no_witness(settings, audit_entry):
    settings.AUDIT_CHECKPOINT_FILE = ""
    before = [audit_entry() for _ in range(2)]
    assert run()[0] == 0
    audit_entry()

    status, out = run("--since-checkpoint")

    assert status == 0, out
    assert f"The walk started at entry #{before[-1].pk}" in out
    assert "not a witness outside it" in out


def test_the_next_daily_walk_starts_where_the_last_one_ended(verified_then_more):
    _, after = verified_then_more
    assert run("--since-checkpoint")[0] == 0

    status, out = run("--since-checkpoint")

    assert status == 0, out
    assert f"The walk started at entry #{after[-1].pk}" in out
    assert "0 entries after it verified (none)" in out


def test_the_panel_reads_verified_up_to_the_head_and_says_from_where(
    verified_then_more, auditor_client
):
    before, after = verified_then_more
    assert run("--since-checkpoint")[0] == 0

    page = auditor_client.get(reverse("audit:list")).content.decode()
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))

    assert "Chain verified: OK" in text
    assert f"entries #{before[0].pk}\N{EN DASH}#{after[-1].pk}" in text
    assert (
        f"#{before[-1].pk + 1}\N{EN DASH}#{after[-1].pk} walked on" in text
        and f"from the checkpoint at entry #{before[-1].pk}, which the walk of" in text
    )
    assert "Not verified yet" not in text


def test_the_panel_after_a_walk_with_nothing_new_says_so(verified_then_more, auditor_client):
    # The demo walks every few minutes, often with nothing new: "#93-#92 walked on ..." read as
    # a walk of a backwards range.
    _, after = verified_then_more
    assert run("--since-checkpoint")[0] == 0
    assert run("--since-checkpoint")[0] == 0

    page = auditor_client.get(reverse("audit:list")).content.decode()
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))

    assert "Chain verified: OK" in text
    assert f"nothing was written after the checkpoint at entry #{after[-1].pk}, which" in text
    assert f"#{after[-1].pk + 1}\N{EN DASH}#{after[-1].pk}" not in text


def test_the_checkpoint_it_emits_counts_the_whole_log(verified_then_more, settings):
    _, after = verified_then_more
    status, out = run("--since-checkpoint")
    assert status == 0, out
    with open(settings.AUDIT_CHECKPOINT_FILE, "rb") as lines:
        latest = chain.read_checkpoints(lines)[-1]

    assert (latest.last_id, latest.entries) == (after[-1].pk, 6)


def test_an_entry_before_the_checkpoint_says_an_earlier_walk_verified_it(
    verified_then_more, auditor_client
):
    before, after = verified_then_more
    assert run("--since-checkpoint")[0] == 0

    def verdict(entry) -> str:
        page = auditor_client.get(reverse("audit:entry", args=[entry.pk])).content.decode()
        text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
        return text.rsplit("Verified", 1)[1][:160]  # the entry's own, after the panel's

    assert f"Yes, by a walk before the checkpoint at entry #{before[-1].pk}" in verdict(before[0])
    assert "Yes, OK on" in verdict(after[0])


def test_a_purge_committed_after_the_start_was_chosen_is_not_reported_as_a_break(
    witness_file, audit_entry, settings, monkeypatch
):
    """audit_purge can commit between choosing the checkpoint to start from and the walk from it
    (two cron jobs overlapping). When it deleted entries after the start, the walk from there
    finds the chain starting elsewhere: it is made again, from where the chain now starts."""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    old = datetime.now(UTC) - timedelta(days=40)
    for _ in range(2):
        audit_entry(at=old)
    assert run()[0] == 0  # verified, and witnessed in the file
    unverified_old = [audit_entry(at=old) for _ in range(2)]  # old, but after the checkpoint
    audit_entry()
    walk, purged = chain._walk, {}

    def purge_first(**kwargs):
        if not purged:
            purged["walking"] = None  # the purge's own walk before it deletes goes ahead
            purged["purge"] = purge_old_entries(retention_days=30)
        return walk(**kwargs)

    monkeypatch.setattr(chain, "_walk", purge_first)
    status, out = run("--since-checkpoint")

    assert purged["purge"].through_id == unverified_old[-1].pk
    assert status == 0, out
    assert "Every witnessed entry was purged since. Walked the whole chain instead." in out
    recorded = ChainVerification.objects.order_by("-id").first()
    assert (recorded.ok, recorded.from_entry_id) == (True, None)


@pytest.mark.parametrize("since", [False, True])
def test_a_break_with_no_purge_meanwhile_is_reported_after_one_walk(
    verified_then_more, monkeypatch, since
):
    """Only a purge that moved the chain's start during a walk makes it walk again: a broken
    chain is not read three times over before it is reported."""
    _, after = verified_then_more
    tamper("UPDATE audit_auditentry SET outcome = %s WHERE id = %s", ["found", after[1].pk])
    walk, walks = chain._walk, []

    def counted_walk(**kwargs):
        walks.append(kwargs)
        return walk(**kwargs)

    monkeypatch.setattr(chain, "_walk", counted_walk)
    status, out = run("--since-checkpoint") if since else run()

    assert status == 1
    assert f"Entry #{after[1].pk} does not match its MAC" in out
    assert len(walks) == 1
