"""A pasted log excerpt goes to the console in a POST, not in the address: the box takes 150,000
characters, far more than a request line may hold (gunicorn refuses lines over 8190 bytes). The
start page answers the POST with a redirect to the table's address, which holds only the IDs;
a paste without any ID, or a longer one, comes back in the box with the reason: the browser never
cuts it. `GET /?q=` still works for old bookmarks."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from connvo_admin.meeting_ids import LONGEST_ID
from fakeconnvo import FakeConnvo
from meetings.forms import MAX_FORM_BYTES, MAX_PASTE, MAX_PASTE_BYTES
from meetings.views.tables import table_url
from tests.pages import lookup_box, main_part, rows_of, selected_deployment
from tests.settings_loader import load_settings, production_environment

pytestmark = pytest.mark.django_db

REQUEST_LINE_LIMIT = 8190  # gunicorn's default limit_request_line


GUNICORN_CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def twelve_ids(fake: FakeConnvo) -> list[str]:
    """Nine meetings that exist and three that do not: all of them well-formed IDs."""
    return list(fake.meeting_labels.values()) + [fake.unknown_meeting_id() for _ in range(3)]


def log_excerpt(meeting_ids: list[str]) -> str:
    """60 lines of a gateway log (about 9.8 KB): timestamps, request ids, users, latencies and,
    on every fifth line, a meeting ID; the first one comes back on the last line."""
    lines = []
    for n in range(60):
        if n % 5 == 2 and n // 5 < len(meeting_ids):
            meeting = meeting_ids[n // 5]
        elif n == 59 and meeting_ids:
            meeting = meeting_ids[0]
        else:
            meeting = "-"
        lines.append(
            f"2026-12-06T10:32:{n:02d}.{n * 37 % 1000:03d}Z INFO gateway[{1200 + n}] "
            f"req={n:08x}-7b3d-4c1a-9e2f-{n * 7919:012x} user=usr_{n:04d} route=/api/join "
            f"meeting={meeting} status={200 if n % 7 else 502} latency_ms={n * 13 % 900} "
            'ua="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0" region=eu-west-1'
        )
    return "\n".join(lines)


def start_page() -> str:
    return reverse("meetings:lookup")


def long_log(meeting_ids: list[str], length: int) -> str:
    """A gateway log of `length` characters (none of them space at either end, which the form
    strips) that names each of `meeting_ids` in turn, spread over it, the last one at its end."""
    filler = "2026-12-07T10:00:00Z INFO gateway req=" + "f" * 32 + " latency_ms=12\n"
    named = [f"meeting={meeting_id}" for meeting_id in meeting_ids]
    per_id = (length - len("\n".join(named))) // len(filler) // len(meeting_ids)
    text = "\n".join(filler * per_id + line for line in named)
    return "." * (length - len(text)) + text


def error_of(page: str) -> str:
    alert = re.search(r'id="q-error"[^>]*>(.*?)</div>', main_part(page), re.S)
    return alert.group(1) if alert else ""


def test_the_excerpt_is_a_long_paste_the_box_allows():
    excerpt = log_excerpt([f"{n:032d}" for n in range(12)])

    assert excerpt.count("\n") == 59
    assert 9_000 < len(excerpt) < 20_000


def test_the_start_pages_form_is_posted(agent_client):
    page = agent_client.get(start_page()).content.decode()

    form = re.search(r"<form\b[^>]*>(?:(?!</form>).)*name=\"q\".*?</form>", main_part(page), re.S)
    assert form, "no form holding the lookup box"
    tag = re.match(r"<form\b[^>]*>", form.group(0)).group(0)
    assert re.search(r'\bmethod="post"', tag, re.I)
    assert 'name="csrfmiddlewaretoken"' in form.group(0)


def test_a_posted_log_excerpt_redirects_to_a_table_of_only_its_ids(agent_client, fake_connvo):
    ids = twelve_ids(fake_connvo)

    response = agent_client.post(start_page(), {"q": log_excerpt(ids), "deployment": "dev"})

    assert response.status_code in (302, 303)
    location = urlsplit(response["Location"])
    assert location.path == reverse("meetings:table", args=["dev"])
    assert parse_qs(location.query)["ids"] == [",".join(ids)]
    assert len(response["Location"]) < REQUEST_LINE_LIMIT // 8
    assert fake_connvo.call_count == 0  # the table asks, once per meeting


def test_the_table_it_leads_to_shows_every_pasted_meeting(agent_client, agent_token, fake_connvo):
    ids = twelve_ids(fake_connvo)

    response = agent_client.post(
        start_page(), {"q": log_excerpt(ids), "deployment": "dev"}, follow=True
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert all(len(rows_of(page, meeting_id)) == 1 for meeting_id in ids)
    assert fake_connvo.call_count == len(ids)


def test_a_posted_paste_with_one_id_opens_the_meeting_page(agent_client, fake_connvo):
    standup = fake_connvo.meeting_id("standup")

    response = agent_client.post(start_page(), {"q": log_excerpt([standup]), "deployment": "dev"})

    assert response.status_code in (302, 303)
    assert response["Location"] == reverse("meetings:detail", args=["dev", standup])


def test_a_posted_paste_without_an_id_comes_back_in_the_box_with_the_reason(
    agent_client, fake_connvo
):
    excerpt = log_excerpt([])

    response = agent_client.post(start_page(), {"q": excerpt, "deployment": "dev"})

    assert response.status_code == 400
    page = main_part(response.content.decode())
    assert lookup_box(page).strip() == excerpt.strip()
    assert selected_deployment(page) == "dev"
    alert = re.search(r'role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert alert and "meeting ID" in alert.group(1)
    assert fake_connvo.call_count == 0


def test_a_post_without_the_csrf_token_is_refused(agent, fake_connvo):
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)

    response = client.post(
        start_page(), {"q": fake_connvo.meeting_id("standup"), "deployment": "dev"}
    )

    assert response.status_code == 403
    assert fake_connvo.call_count == 0


def test_a_post_with_the_forms_csrf_token_is_accepted(agent, fake_connvo):
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    page = client.get(start_page()).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "the start page's form carries no CSRF token"

    response = client.post(
        start_page(),
        {
            "q": log_excerpt(twelve_ids(fake_connvo)),
            "deployment": "dev",
            "csrfmiddlewaretoken": token.group(1),
        },
    )

    assert response.status_code in (302, 303)


def test_an_old_bookmark_with_the_id_in_the_address_still_opens_the_meeting(
    agent_client, fake_connvo
):
    standup = fake_connvo.meeting_id("standup")

    response = agent_client.get(
        start_page(),
        {"q": standup, "deployment": "dev"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )

    assert response.status_code in (302, 303)
    assert response["Location"] == reverse("meetings:detail", args=["dev", standup])


# --- Pastes longer than 20,000 characters: read whole, or refused whole ------------------------


def test_the_box_has_no_maxlength_that_would_cut_a_paste(agent_client):
    # With maxlength="20000", Chromium kept the first 20,000 characters of a longer paste without
    # a word, and an ID cut at the end (31 of 32 characters) was looked up as another meeting.
    page = agent_client.get(start_page()).content.decode()

    box = re.search(r'<textarea\b[^>]*\bname="q"[^>]*>', page)
    assert box and "maxlength" not in box.group(0)


def test_a_paste_far_past_20000_characters_is_read_whole(agent_client, fake_connvo):
    ids = twelve_ids(fake_connvo)
    pasted = long_log(ids, MAX_PASTE)

    response = agent_client.post(start_page(), {"q": pasted, "deployment": "dev"})

    assert len(pasted) == MAX_PASTE
    assert response.status_code in (302, 303)
    assert parse_qs(urlsplit(response["Location"]).query)["ids"] == [",".join(ids)]


def test_line_breaks_count_once_as_the_box_shows_them(agent_client, fake_connvo):
    # Browsers send a textarea's line breaks as CR LF: a paste at the limit, as the box counted
    # it, is not refused for the CRs the browser added.
    pasted = long_log(twelve_ids(fake_connvo), MAX_PASTE).replace("\n", "\r\n")

    response = agent_client.post(start_page(), {"q": pasted, "deployment": "dev"})

    assert response.status_code in (302, 303)


def test_a_longer_paste_is_refused_with_its_length_and_kept_in_the_box(agent_client, fake_connvo):
    pasted = long_log(twelve_ids(fake_connvo), MAX_PASTE + 1)

    response = agent_client.post(start_page(), {"q": pasted, "deployment": "dev"})

    assert response.status_code == 400
    page = response.content.decode()
    assert error_of(page) == (
        f"<p>That paste is {MAX_PASTE + 1:,} characters; the box reads at most {MAX_PASTE:,} at a "
        "time. Keep the part with the meeting IDs (the lines around the incident), or look the "
        "rest up in a second paste.</p>"
    )
    assert lookup_box(main_part(page)).strip() == pasted.strip()
    assert fake_connvo.call_count == 0


def test_a_long_paste_with_more_meetings_than_a_table_holds_says_how_many(
    agent_client, fake_connvo, settings
):
    settings.CONNVO_TABLE_MAX_MEETINGS = 100
    ids = [fake_connvo.unknown_meeting_id() for _ in range(101)]

    response = agent_client.post(start_page(), {"q": long_log(ids, MAX_PASTE), "deployment": "dev"})

    assert response.status_code == 400
    assert "That is 101 different meeting IDs; a table holds at most 100." in error_of(
        response.content.decode()
    )


def test_any_ascii_paste_the_box_reads_fits_in_the_request_the_server_reads(
    agent_client, fake_connvo, settings
):
    # The worst ASCII for its size: line breaks, form-encoded as a browser sends them (%0D%0A).
    pasted = "#" + "\r\n" * (MAX_PASTE - 2) + "#"
    page = agent_client.get(start_page()).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urlencode({"csrfmiddlewaretoken": token, "q": pasted, "deployment": "dev"})
    nginx = (Path(settings.BASE_DIR) / "docs/deploy/nginx-site.conf").read_text()

    # The page's script holds a paste to MAX_PASTE_BYTES, inside MAX_FORM_BYTES: nginx's limit,
    # below Django's.
    assert re.search(r"^\s*client_max_body_size 1m;", nginx, re.M)
    assert MAX_FORM_BYTES == 1024 * 1024 <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert MAX_PASTE_BYTES == MAX_FORM_BYTES - 4096
    assert len(body) < MAX_PASTE_BYTES
    response = agent_client.post(
        start_page(), body, content_type="application/x-www-form-urlencoded"
    )
    # Read whole, and refused for holding no meeting ID, not for its size.
    assert response.status_code == 400
    assert "is not a Connvo meeting ID" in error_of(response.content.decode())


def test_the_largest_table_and_its_live_refresh_fit_the_request_line_the_servers_read(
    agent_client, agent_token, fake_connvo, settings
):
    """A table's address holds its IDs and its live refresh adds each row's state. The settings
    allowed 500 meetings; past about 180 the address (or its refresh) was longer than the 8,190
    bytes gunicorn (limit_request_line, its highest) and nginx (8 KB buffers) read of a request
    line: the lookup box took the paste, then the table was a bare "Bad Request" (review)."""
    most = load_settings(production_environment(CONNVO_TABLE_MAX_MEETINGS="150"))
    assert most["CONNVO_TABLE_MAX_MEETINGS"] == 150
    with pytest.raises(ImproperlyConfigured, match="between 2 and 150"):
        load_settings(production_environment(CONNVO_TABLE_MAX_MEETINGS="151"))
    settings.CONNVO_TABLE_MAX_MEETINGS = 150
    # The longest IDs there are, none a meeting: every row settled, each in the refresh's values.
    ids = [
        f"{n:03d}".translate(str.maketrans("0123456789", "abcdefghjk")) * 12 + "m"
        for n in range(150)
    ]
    assert {len(i) for i in ids} == {LONGEST_ID}
    address = table_url("dev", ids, sort="state", show="needs_action")

    page = agent_client.get(address)
    html = page.content.decode()
    poller = re.search(r'<div id="live-poller"[^>]*>', html)[0]
    refresh_url = unescape(re.search(r'hx-get="([^"]+)"', poller)[1])
    values = json.loads(unescape(re.search(r"hx-vals='([^']+)'", poller)[1]))
    refresh = f"{refresh_url}&{urlencode(values)}"

    assert page.status_code == 200
    # Every row in one of them (settled, or not asked past the lookup limit).
    assert len(f"{values['done']}.{values['known']}".split(".")) == 150
    limit = int(re.search(r"^limit_request_line = (\d+)", GUNICORN_CONF.read_text(), re.M)[1])
    for line in (f"GET {address} HTTP/1.1", f"GET {refresh} HTTP/1.1"):
        assert len(line.encode()) <= limit, len(line)
