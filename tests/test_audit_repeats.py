"""Repeated refusals are counted, not appended one by one (audit/repeats.py): the first of its
kind from its source in a minute is a full entry, the rest of the minute one chained counted
record, so no flood of refusals floods the log, and every request is still on record."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import chain, repeats
from audit.models import Action, AuditEntry, RepeatCount
from audit.services import Origin
from tests.conftest import examples
from tests.test_audit_chain import tamper

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (concurrent writers)"
)

MINUTE = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
NEXT_MINUTE = datetime(2026, 12, 6, 10, 1, tzinfo=UTC)
# Pinned well inside the minute, so no test depends on where in its minute it runs.
pinned = pytest.mark.time_machine("2026-12-06T10:00:20Z", tick=False)


def forged_post(ip: str = "203.0.113.9", path: str = "/accounts/login/"):
    """A form that did not come from the console: refused by the CSRF check."""
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip, HTTP_USER_AGENT="flood/1")
    return client.post(path, {"username": "agent", "password": "x"})


def wrong_password(username: str, ip: str = "203.0.113.9"):
    return Client(REMOTE_ADDR=ip).post(
        reverse("accounts:login"), {"username": username, "password": "wrong"}
    )


def refuse(source: str = "198.51.100.1", *, tried: str = "", kind=repeats.LOCKED_OUT, **fields):
    repeats.refused(
        origin=Origin(user=None, username=tried, client_ip=None, user_agent="pytest"),
        action=kind.action,
        kind=kind,
        source=source,
        tried=tried,
        detail=kind.words,
        **fields,
    )


def counted_records():
    return AuditEntry.objects.filter(repeats__isnull=False).order_by("id")


@pinned
def test_a_csrf_flood_is_one_entry_and_one_counted_record(db):
    flood = 25
    for _ in range(flood):
        assert forged_post().status_code == 403

    first = AuditEntry.objects.get()
    assert first.action == Action.PERMISSION_DENIED
    assert first.detail.startswith("POST /accounts/login/: CSRF check failed")
    assert (first.client_ip, first.repeats, first.tally) == ("203.0.113.9", None, None)
    assert (first.via, first.deployment, first.meeting_id) == ("", "", "")  # none given
    assert RepeatCount.objects.get().count == flood - 1
    assert repeats.requests_on_record(action=Action.PERMISSION_DENIED) == flood

    assert repeats.seal_past(now=NEXT_MINUTE) == 1

    assert not RepeatCount.objects.exists()
    counted = counted_records().get()
    assert counted.pk > first.pk
    assert (counted.action, counted.repeats, counted.calls) == (
        Action.PERMISSION_DENIED,
        flood - 1,
        0,
    )
    assert (counted.client_ip, counted.user_agent, counted.http_status) == (
        "203.0.113.9",
        "flood/1",
        403,
    )
    # Every repeat had the same detail, so the counted record keeps it.
    assert counted.detail == first.detail
    assert counted.tally == {
        "kind": "repeats",
        "source": "203.0.113.9",
        "from": "2026-12-06T10:00:20+00:00",
        "to": "2026-12-06T10:00:20+00:00",
        "sample": ["POST /accounts/login/"],
        "distinct": 1,
    }
    assert sum(entry.request_count for entry in AuditEntry.objects.all()) == flood
    assert repeats.requests_on_record(action=Action.PERMISSION_DENIED) == flood
    assert chain.verify().ok
    # Sealing again finds nothing more to seal.
    assert repeats.seal_past(now=NEXT_MINUTE) == 0


@pinned
def test_a_minute_with_only_its_first_refusal_leaves_no_counted_record(db):
    forged_post()

    assert repeats.seal_past(now=NEXT_MINUTE) == 0

    assert AuditEntry.objects.count() == 1
    assert not RepeatCount.objects.exists()


@pinned
def test_a_minute_not_over_is_not_sealed(db):
    for _ in range(3):
        forged_post()

    assert repeats.seal_past() == 0

    assert RepeatCount.objects.get().count == 2


@pinned
def test_sources_and_kinds_are_counted_apart(db):
    for _ in range(3):
        forged_post(ip="203.0.113.1")
    for _ in range(4):
        forged_post(ip="203.0.113.2")
    for _ in range(4):  # one short of the lockout
        wrong_password("mallory", ip="203.0.113.1")

    firsts = list(
        AuditEntry.objects.order_by("id").values_list("action", "client_ip", "actor_username")
    )
    assert firsts == [
        (Action.PERMISSION_DENIED, "203.0.113.1", ""),
        (Action.PERMISSION_DENIED, "203.0.113.2", ""),
        (Action.SIGN_IN_FAILED, "203.0.113.1", "mallory"),
    ]

    assert repeats.seal_past(now=NEXT_MINUTE) == 3

    counted = {(e.action, e.tally["source"]): e.repeats for e in counted_records()}
    assert counted == {
        (Action.PERMISSION_DENIED, "203.0.113.1"): 2,
        (Action.PERMISSION_DENIED, "203.0.113.2"): 3,
        (Action.SIGN_IN_FAILED, "203.0.113.1"): 3,
    }
    assert chain.verify().ok


@pinned
def test_a_csrf_refusal_and_a_page_refused_are_different_kinds(outsider):
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.1.2.3")
    client.force_login(outsider)
    for _ in range(2):
        client.get(reverse("meetings:tokens"))
    for _ in range(2):
        client.post(reverse("meetings:tokens"))

    details = list(AuditEntry.objects.order_by("id").values_list("detail", flat=True))
    assert details[0] == "GET /tokens/"
    assert "CSRF check failed" in details[1]
    assert len(details) == 2
    assert {(row.kind, row.count) for row in RepeatCount.objects.all()} == {
        ("forbidden", 1),
        ("csrf", 1),
    }


@pinned
def test_a_staff_member_refused_again_and_again_is_counted_under_their_name(outsider):
    client = Client(REMOTE_ADDR="10.1.2.3")
    client.force_login(outsider)
    for page in ("meetings:tokens", "audit:list", "meetings:tokens"):
        assert client.get(reverse(page)).status_code == 403

    repeats.seal_past(now=NEXT_MINUTE)

    counted = counted_records().get()
    assert (counted.actor_username, counted.repeats) == ("outsider", 2)
    # Linked to their account as the minute's first entry is: its page read "not linked to a
    # console account: deleted since, or never one" of an account that exists.
    assert counted.actor_id == outsider.pk
    assert AuditEntry.objects.filter(repeats=None).get().actor_id == outsider.pk
    assert counted.tally["source"] == "outsider"
    assert counted.tally["sample"] == ["GET /tokens/", "GET /audit/"]
    assert counted.tally["distinct"] == 2
    # The repeats were of different pages: the record names none of them as its detail.
    assert counted.detail == "Permission denied"


def test_the_next_minute_starts_with_a_full_entry_and_seals_the_last(db, time_machine):
    time_machine.move_to(datetime(2026, 12, 6, 10, 0, 50, tzinfo=UTC), tick=False)
    for _ in range(3):
        forged_post()
    time_machine.move_to(datetime(2026, 12, 6, 10, 1, 5, tzinfo=UTC), tick=False)
    for _ in range(2):
        forged_post()

    # The new minute's first sealed the last minute's count before its own entry.
    entries = list(AuditEntry.objects.order_by("id"))
    assert [entry.repeats for entry in entries] == [None, 2, None]
    assert entries[1].tally["to"] == "2026-12-06T10:00:50+00:00"
    assert RepeatCount.objects.get().minute == NEXT_MINUTE

    time_machine.move_to(datetime(2026, 12, 6, 10, 2, tzinfo=UTC), tick=False)
    assert repeats.seal_past() == 1

    assert [entry.repeats for entry in AuditEntry.objects.order_by("id")] == [None, 2, None, 1]
    assert repeats.requests_on_record() == 5
    assert chain.verify().ok


@pinned
def test_a_flood_of_locked_out_sign_ins_is_counted_with_the_usernames_tried(db, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = 2
    tried = [f"user{n}" for n in range(12)]
    for username in tried:
        wrong_password(username)

    entries = list(AuditEntry.objects.order_by("id").values_list("detail", "actor_username"))
    # One wrong password, then the address is paused: the sign-ins of this minute already have
    # their full entry, so the lockouts are counted from the first.
    assert entries == [("Wrong username or password.", "user0")]

    repeats.seal_past(now=NEXT_MINUTE)

    locked = counted_records().get(detail="locked out")
    assert locked.repeats == 11
    assert locked.actor_username == ""  # several usernames: the record names none
    assert locked.tally["sample"] == tried[1 : 1 + repeats.SAMPLE_SIZE]
    assert locked.tally["distinct"] == 11
    assert repeats.requests_on_record(action=Action.SIGN_IN_FAILED) == 12


@pinned
def test_an_unauthenticated_flood_adds_at_most_five_chained_entries_a_minute(db, settings):
    # Everything a stranger can be refused, over and over, from one address in one minute:
    # forged forms, wrong passwords, and sign-ins refused by the lockout they cause.
    settings.AXES_FAILURE_LIMIT = 3
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = 3
    for n in range(40):
        forged_post()
        wrong_password(f"user{n % 7}")

    repeats.seal_past(now=NEXT_MINUTE)

    assert AuditEntry.objects.count() <= 5
    assert repeats.requests_on_record() == 80
    assert set(RepeatCount.objects.all()) == set()
    assert chain.verify().ok


@pinned
def test_the_distinct_count_stops_at_its_cap(db):
    for n in range(repeats.DISTINCT_CAP + 20):
        refuse(tried=f"guess{n}")
    refuse(tried="guess0")

    row = RepeatCount.objects.get()
    assert row.count == repeats.DISTINCT_CAP + 20
    assert len(row.sample) == repeats.SAMPLE_SIZE
    assert len(row.seen) == repeats.DISTINCT_CAP
    repeats.seal_past(now=NEXT_MINUTE)
    assert counted_records().get().tally["distinct"] == repeats.DISTINCT_CAP


def test_a_counted_record_gives_its_instants_in_utc_whatever_the_local_zone(db):
    east = ZoneInfo("Pacific/Kiritimati")  # fourteen hours east: local time would show
    with time_machine.travel(datetime(2026, 12, 7, 0, 0, 20, tzinfo=east), tick=False):
        for _ in range(3):
            refuse()
    with time_machine.travel(datetime(2026, 12, 7, 0, 1, 20, tzinfo=east), tick=False):
        assert repeats.seal_past() == 1

    tally = counted_records().get().tally
    assert tally["from"] == tally["to"] == "2026-12-06T10:00:20+00:00"


@pinned
def test_a_counted_record_keeps_what_every_repeat_shared(db):
    for _ in range(3):
        refuse(via="table", deployment="prod", meeting_id="m1", http_status=429)

    repeats.seal_past(now=NEXT_MINUTE)

    counted = counted_records().get()
    assert (counted.via, counted.deployment, counted.meeting_id, counted.http_status) == (
        "table",
        "prod",
        "m1",
        429,
    )
    # Sealed by whichever request or command came by: no request id of the repeats' own.
    assert counted.request_id == ""


@pinned
def test_a_second_kind_from_a_source_is_counted_from_its_first_and_only_for_that_source(db):
    """A lockout after wrong passwords from one address: the lockout has no full entry of its
    own (the wrong password had it), so its counted record starts at its first request. Another
    address's lockouts of the same minute are theirs alone."""
    refuse("198.51.100.2")  # locked out first: its own full entry
    refuse(kind=repeats.WRONG_PASSWORD)
    refuse()

    assert repeats.seal_past(now=NEXT_MINUTE) == 1

    counted = counted_records().get()
    assert (counted.tally["source"], counted.detail, counted.repeats) == (
        "198.51.100.1",
        repeats.LOCKED_OUT.words,
        1,
    )
    assert counted.tally["from"] == counted.tally["to"] == "2026-12-06T10:00:20+00:00"


def test_another_kind_from_an_earlier_minute_does_not_take_this_minutes_full_entry(
    db, time_machine
):
    time_machine.move_to(MINUTE.replace(second=20), tick=False)
    refuse(kind=repeats.WRONG_PASSWORD)
    time_machine.move_to(NEXT_MINUTE.replace(second=20), tick=False)  # not sealed meanwhile

    refuse()

    entries = AuditEntry.objects.filter(repeats__isnull=True).order_by("id")
    assert [(e.action, e.detail) for e in entries] == [
        (Action.SIGN_IN_FAILED, repeats.WRONG_PASSWORD.words),
        (Action.SIGN_IN_FAILED, repeats.LOCKED_OUT.words),
    ]


@pinned
def test_repeats_of_no_kind_whose_details_differ_are_counted_without_one(db):
    origin = Origin(user=None, username="agent", client_ip="192.0.2.1", user_agent="pytest")
    for detail in ("first", "second", "third"):
        repeats.refused(origin=origin, action=Action.LOOKUP, outcome="rate_limited", detail=detail)

    assert repeats.seal_past(now=NEXT_MINUTE) == 1

    counted = counted_records().get()
    assert (counted.action, counted.outcome, counted.repeats, counted.detail) == (
        Action.LOOKUP,
        "rate_limited",
        2,
        "",
    )


@pinned
def test_a_repeat_that_differs_clears_what_the_record_would_otherwise_claim(db):
    refuse(deployment="prod", meeting_id="m1", http_status=429)
    refuse(deployment="prod", meeting_id="m1", http_status=429)
    refuse(deployment="prod", meeting_id="m2", http_status=None)

    repeats.seal_past(now=NEXT_MINUTE)

    counted = counted_records().get()
    assert (counted.deployment, counted.meeting_id, counted.http_status) == ("prod", "", None)


@pinned
def test_repeats_of_different_accounts_link_the_record_to_none(agent, outsider):
    for user in (agent, outsider, agent):
        repeats.refused(
            origin=Origin(user=user, username=user.username, client_ip="10.1.2.3"),
            action=Action.PERMISSION_DENIED,
            kind=repeats.FORBIDDEN,
        )

    repeats.seal_past(now=NEXT_MINUTE)

    counted = counted_records().get()
    assert (counted.actor_id, counted.actor_username, counted.repeats) == (None, "", 2)


@pinned
def test_sealing_is_all_or_nothing(db, monkeypatch):
    for _ in range(4):
        forged_post()

    def crash(row):
        raise RuntimeError("killed after the append")

    monkeypatch.setattr(repeats, "_forget", crash)
    with pytest.raises(RuntimeError):
        repeats.seal_past(now=NEXT_MINUTE)

    # The counted record went with the crash; the count is still there to seal.
    assert not counted_records().exists()
    assert RepeatCount.objects.get().count == 3
    assert chain.verify().ok

    monkeypatch.undo()
    assert repeats.seal_past(now=NEXT_MINUTE) == 1
    assert counted_records().get().repeats == 3
    assert chain.verify().ok


@pinned
def test_a_refusal_stands_when_it_cannot_be_counted(db, caplog):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_repeatcount RENAME TO audit_repeatcount_away")

    response = forged_post()

    assert response.status_code == 403
    assert "could not be recorded" in caplog.text


@pinned
@pytest.mark.parametrize(
    ("field", "value"), [("repeats", 999), ("tally", '{"kind": "repeats", "source": "x"}')]
)
def test_a_counted_record_tampered_with_is_named_by_audit_verify(db, field, value):
    for _ in range(3):
        forged_post()
    repeats.seal_past(now=NEXT_MINUTE)
    counted = counted_records().get()
    assert chain.verify().ok

    tamper(
        f"UPDATE audit_auditentry SET {field} = %s WHERE id = %s",  # noqa: S608 (our names)
        [value, counted.pk],
    )
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("audit_verify", stdout=out, stderr=out)

    assert f"Entry #{counted.pk} does not match its MAC" in out.getvalue()


# What a stranger can put where a source or a username goes: any text, of any length.
ODD_TEXT = st.text(max_size=1000)


@pinned
@settings(max_examples=examples(25), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=ODD_TEXT, tried=ODD_TEXT)
@example(source="a\x00b", tried="\ud800")
@example(source="x" * 1000, tried="y" * 1000)
def test_any_source_and_value_tried_is_stored_and_counted(db, source, tried):
    RepeatCount.objects.all().delete()
    before = repeats.requests_on_record()

    for _ in range(3):
        refuse(source, tried=tried)

    row = RepeatCount.objects.get()
    assert row.count == 2
    assert "\x00" not in row.source and len(row.source) <= 160
    assert all(len(value) <= repeats.SAMPLE_LENGTH for value in row.sample)
    assert repeats.seal_past(now=NEXT_MINUTE) == 1
    assert repeats.requests_on_record() - before == 3
    assert chain.verify().ok


@on_postgres
@pinned
@pytest.mark.django_db(transaction=True)
def test_concurrent_refusals_make_one_first_entry_and_count_the_rest():
    writers, each = 8, 5
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def flood(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                refuse(tried=f"w{n}-{i}")
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert AuditEntry.objects.count() == 1
    assert RepeatCount.objects.get().count == writers * each - 1
    assert repeats.seal_past(now=NEXT_MINUTE) == 1
    assert repeats.requests_on_record() == writers * each
    assert chain.verify().ok
