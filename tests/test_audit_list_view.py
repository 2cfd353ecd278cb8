"""The audit log page (/audit/): filters, refreshes hidden by default, keyset pages, and the
chain's last verification."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit import chain
from audit.models import Action, ChainVerification, Via
from audit.selectors import Cursor

pytestmark = pytest.mark.django_db

URL = reverse("audit:list")
MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"


def shown_ids(response) -> list[int]:
    """The entries on the page, in the order shown."""
    return [int(n) for n in re.findall(r'href="/audit/entries/(\d+)/"', response.content.decode())]


def link(response, rel: str) -> str | None:
    """The page link a browser would follow (they are relative: `?before=…`)."""
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', response.content.decode())
    return URL + found.group(1).replace("&amp;", "&") if found else None


def test_newest_entries_first_with_links_to_their_meeting_and_staff_member(
    auditor_client, audit_entry
):
    older = audit_entry(username="alice", meeting_id=MEETING, deployment="prod", outcome="found")
    newer = audit_entry(username="bob", action=Action.SIGN_IN)

    response = auditor_client.get(URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert shown_ids(response) == [newer.pk, older.pk]
    assert reverse("audit:meeting", args=[MEETING]) in page
    assert reverse("audit:staff", args=["alice"]) in page
    assert "Signed in" in page
    assert "10.0.0.7" in page


def test_live_refreshes_are_hidden_unless_asked_for(auditor_client, audit_entry):
    page_view = audit_entry(via=Via.PAGE, meeting_id=MEETING)
    refresh = audit_entry(via=Via.REFRESH, meeting_id=MEETING)

    hidden = auditor_client.get(URL)
    included = auditor_client.get(URL, {"refreshes": "on"})
    only_refreshes = auditor_client.get(URL, {"via": "refresh"})

    assert shown_ids(hidden) == [page_view.pk]
    assert "Live refreshes are hidden one by one" in hidden.content.decode()
    assert shown_ids(included) == [refresh.pk, page_view.pk]
    assert shown_ids(only_refreshes) == [refresh.pk]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"staff": "alice"}, ["alice-prod"]),
        ({"meeting": f"https://app.connvo.example/meetings/{MEETING}?tab=chat"}, ["alice-prod"]),
        ({"deployment": "dev"}, ["bob-dev"]),
        ({"outcome": "not_visible"}, ["bob-dev"]),
        ({"via": "cli"}, ["carol-cli"]),
        ({"action": "sign_in_failed"}, ["mallory"]),
        ({"staff": "bob", "deployment": "prod"}, []),
    ],
)
def test_each_filter_narrows_the_list(auditor_client, audit_entry, params, expected):
    entries = {
        "alice-prod": audit_entry(
            username="alice", meeting_id=MEETING, deployment="prod", outcome="found", via="page"
        ),
        "bob-dev": audit_entry(
            username="bob", meeting_id="other", deployment="dev", outcome="not_visible", via="page"
        ),
        "carol-cli": audit_entry(username="carol", meeting_id="x", outcome="found", via="cli"),
        "mallory": audit_entry(username="mallory", action=Action.SIGN_IN_FAILED),
    }

    response = auditor_client.get(URL, params)

    assert shown_ids(response) == [entries[name].pk for name in expected]
    if not expected:
        assert "No entries match this filter." in response.content.decode()


def test_date_range_is_whole_days_in_the_viewers_timezone(auditor_client, audit_entry):
    # 23:30 on 1 March in Paris is 22:30 UTC.
    late_evening = audit_entry(at=datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    next_morning = audit_entry(at=datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
    auditor_client.cookies["console_tz"] = "Europe/Paris"

    response = auditor_client.get(URL, {"since": "2026-03-01", "until": "2026-03-01"})

    assert shown_ids(response) == [late_evening.pk]
    assert next_morning.pk not in shown_ids(response)


def test_end_before_start_is_explained(auditor_client, audit_entry):
    response = auditor_client.get(URL, {"since": "2026-03-02", "until": "2026-03-01"})

    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()


def test_keyset_pages_cover_every_entry_once_even_with_equal_timestamps(
    settings, auditor_client, audit_entry
):
    settings.AUDIT_PAGE_SIZE = 3
    same_moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    entries = [audit_entry(at=same_moment + timedelta(seconds=n // 4)) for n in range(10)]
    newest_first = [e.pk for e in sorted(entries, key=lambda e: (e.at, e.pk), reverse=True)]

    pages, url = [], URL
    while url:
        response = auditor_client.get(url)
        pages.append(shown_ids(response))
        url = link(response, "next")

    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [pk for page in pages for pk in page] == newest_first

    # And back again, page by page, towards the newest.
    back = []
    while url := link(response, "prev"):
        response = auditor_client.get(url)
        back.append(shown_ids(response))
    assert back == pages[-2::-1]


def test_pages_keep_the_filter(settings, auditor_client, audit_entry):
    settings.AUDIT_PAGE_SIZE = 2
    for n in range(3):
        audit_entry(username="alice")
        audit_entry(username=f"other{n}")

    first = auditor_client.get(URL, {"staff": "alice"})
    second = auditor_client.get(link(first, "next"))

    assert "staff=alice" in link(first, "next")
    assert len(shown_ids(first)) == 2
    assert len(shown_ids(second)) == 1


def test_pages_never_count_or_skip_rows(settings, auditor_client, audit_entry):
    settings.AUDIT_PAGE_SIZE = 2
    for _ in range(5):
        audit_entry()
    first = auditor_client.get(URL)

    with CaptureQueriesContext(connection) as queries:
        auditor_client.get(link(first, "next"))

    on_entries = [q["sql"].upper() for q in queries if "AUDIT_AUDITENTRY" in q["sql"].upper()]
    assert not any("OFFSET" in sql for sql in on_entries)
    # The only counts are the chain-health panel's, of the entries after a verification or a
    # checkpoint, stopped at a bound (tests/test_audit_chain_health.py); the page counts nothing.
    for sql in on_entries:
        if "COUNT(" in sql:
            assert '"ID" >' in sql and "LIMIT" in sql, sql


def test_a_mangled_page_link_shows_the_newest_entries(auditor_client, audit_entry):
    entry = audit_entry()

    response = auditor_client.get(URL, {"before": "not-a-cursor"})

    assert response.status_code == 200
    assert shown_ids(response) == [entry.pk]


def test_a_page_link_past_every_entry_left_says_so_and_leads_to_the_newest(
    auditor_client, audit_entry
):
    """An "Older" link kept from before a purge points past every entry left: the page said
    "No entries match this filter." under the overview, with no way back to the newest."""
    audit_entry()
    before_the_log = Cursor(at=datetime(2000, 1, 1, tzinfo=UTC), id=1)

    response = auditor_client.get(URL, {"before": str(before_the_log), "staff": "agent"})

    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert shown_ids(response) == []
    assert "No entries match this filter before this page's point in the log." in page
    assert '<a href="?staff=agent">« Newest</a>' in page


def test_says_when_the_chain_was_never_verified(auditor_client):
    page = auditor_client.get(URL).content.decode()

    assert "Chain never verified." in page


def test_shows_the_last_verification(auditor_client, audit_entry):
    entry = audit_entry()
    chain.record_verification(chain.verify(), duration_ms=5)

    page = auditor_client.get(URL).content.decode()

    assert f"entry #{entry.pk}: 1 of the log's 1 entry, OK on" in page


def test_warns_when_the_last_verification_found_a_break(auditor_client):
    chain.record_verification(
        chain.Verification(ok=False, entries_checked=7, first_bad_id=8, message="Entry #8 ..."),
        duration_ms=5,
    )

    page = auditor_client.get(URL).content.decode()

    assert "Chain BROKEN" in page
    assert reverse("audit:entry", args=[8]) in page


def test_warns_when_the_last_verification_is_old(settings, auditor_client, audit_entry):
    settings.AUDIT_VERIFY_WARN_AFTER_HOURS = 1
    ChainVerification.objects.create(
        at=datetime.now(UTC) - timedelta(hours=2),
        ok=True,
        entries_checked=0,
        message="0 entries verified.",
        duration_ms=5,
    )

    page = auditor_client.get(URL).content.decode()

    assert "That is more than 1 hour ago." in page


def test_export_links_carry_the_filter(auditor_client):
    page = auditor_client.get(URL, {"staff": "alice", "before": "1.2"}).content.decode()

    assert 'href="/audit/export.csv?staff=alice"' in page
    assert 'href="/audit/export.jsonl?staff=alice"' in page


def test_odd_meeting_ids_and_usernames_link_to_their_pages(auditor_client, audit_entry):
    """The log keeps what was typed, valid or not; a "/" in it must not break the page."""
    odd_id = "https://app.connvo.example/x y?z#"
    audit_entry(username="a/b c", meeting_id=odd_id, outcome="invalid_id")

    response = auditor_client.get(URL)

    assert response.status_code == 200
    meeting_url = reverse("audit:meeting", args=[odd_id])
    staff_url = reverse("audit:staff", args=["a/b c"])
    assert auditor_client.get(meeting_url).context["meeting_id"] == odd_id
    assert auditor_client.get(staff_url).context["staff_username"] == "a/b c"


def chips(response) -> dict[str, str]:
    """The active filters' chips: what each says to a screen reader (not the drawn cross), and
    where removing it leads."""
    found = re.findall(
        r'<a class="filter-chip[^"]*" href="([^"]*)" data-filter="\w+">(.*?)</a>',
        response.content.decode(),
    )
    return {
        re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", label))).strip(): html.unescape(
            href
        )
        for href, label in (
            (href, re.sub(r'<span[^>]*aria-hidden="true">.*?</span>', "", label))
            for href, label in found
        )
    }


def test_active_filters_are_chips_that_each_remove_one_and_keep_the_others(
    auditor_client, audit_entry
):
    query = {
        "staff": "bob",
        "outcome": "not_visible",
        "since": "2026-03-01",
        "refreshes": "on",
        "before": "1772000000000000.9",  # a later page: removing a filter starts again
    }

    shown = chips(auditor_client.get(URL, query))

    assert shown == {
        "Remove the filter Staff member: bob": f"{URL}?outcome=not_visible&since=2026-03-01"
        "&refreshes=on",
        "Remove the filter Outcome: Not a participant": f"{URL}?staff=bob&since=2026-03-01"
        "&refreshes=on",
        "Remove the filter From: 1 Mar 2026": f"{URL}?staff=bob&outcome=not_visible&refreshes=on",
        "Remove the filter Include live refreshes": f"{URL}?staff=bob&outcome=not_visible"
        "&since=2026-03-01",
    }


def test_no_chips_without_a_filter_and_none_for_an_unticked_box(auditor_client):
    assert chips(auditor_client.get(URL)) == {}
    assert chips(auditor_client.get(URL, {"refreshes": "", "staff": " "})) == {}


def test_a_refused_value_is_a_chip_too_so_it_can_be_removed(auditor_client):
    response = auditor_client.get(URL, {"until": "0001-01-01", "via": "page"})

    assert response.status_code == 400
    assert chips(response) == {
        "Remove the filter Via: Page": f"{URL}?until=0001-01-01",
        "Remove the filter To: 0001-01-01 (not valid)": f"{URL}?via=page",
    }


def test_an_outcome_no_console_names_says_whether_the_log_ever_held_it(auditor_client, audit_entry):
    # Taken on purpose (an older or newer console's outcome), but "Outcome: Bogus" read as a
    # filter like any other beside "(not valid)" on a bad action or via.
    audit_entry(username="alice", outcome="older_outcome")

    bogus = chips(auditor_client.get(URL, {"outcome": "bogus"}))
    older = chips(auditor_client.get(URL, {"outcome": "older_outcome"}))
    known = chips(auditor_client.get(URL, {"outcome": "timeout"}))  # none yet, but a real one

    assert bogus == {"Remove the filter Outcome: Bogus (never in the log)": URL}
    assert older == {"Remove the filter Outcome: Older outcome": URL}
    assert known == {"Remove the filter Outcome: No answer in time": URL}


def test_a_pages_own_filter_is_a_chip_to_the_whole_log(auditor_client, audit_entry):
    audit_entry(username="bob", meeting_id=MEETING)

    staff_page = chips(auditor_client.get(reverse("audit:staff", args=["bob"]), {"via": "page"}))
    meeting_page = chips(auditor_client.get(reverse("audit:meeting", args=[MEETING])))

    assert staff_page["Remove the filter Staff member: bob (to the whole log)"] == f"{URL}?via=page"
    assert meeting_page[f"Remove the filter Meeting: {MEETING} (to the whole log)"] == URL


def test_the_filter_comes_before_the_overview_it_filters(auditor_client, audit_entry):
    audit_entry()

    page = auditor_client.get(URL).content.decode()

    flags = page.index('class="card audit-flags"')
    form = page.index('class="card audit-filters"')
    overview = page.index('class="card audit-overview"')
    entries = page.index('class="card card--table"')
    # What the filter does not change (the last day's flags) above it; what it drives below.
    assert flags < form < overview < entries
