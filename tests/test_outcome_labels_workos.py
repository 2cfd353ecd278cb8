"""One label for a missing credential on every page, in the words of the deployment's kind: where
agents connect their Connvo account (WorkOS) it is "Account not connected", where they paste a
token "No token saved" (meetings/connvo.py `outcome_handling`, from connvo_admin/outcomes.py's
table). The meeting page's heading (the outcome's `title`) is the one other text."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.urls import reverse

from connvo_admin.outcomes import HANDLING, Outcome
from meetings.connvo import missing_token, not_provisioned, outcome_handling, token_rejected
from meetings.deployments import get_deployment
from tests.pages import row_of, text_of
from tests.test_credentials import connect

pytestmark = pytest.mark.django_db

CONNECTED, PASTED = "Account not connected", "No token saved"


def escalation_details(page: str) -> str:
    start = page.index("Details for escalation")
    return page[start : page.index("</details>", start)]


def recent_lookup(page: str, meeting_id: str) -> str:
    recent = page[page.index("recent lookups") :]
    items = re.findall(r"<li\b.*?</li>", recent, re.S)
    return text_of(next(item for item in items if meeting_id in item))


@pytest.mark.parametrize(
    ("connects_accounts", "said", "never"),
    [(True, CONNECTED, PASTED), (False, PASTED, CONNECTED)],
    ids=["WorkOS", "pasted tokens"],
)
def test_every_page_says_the_deployments_label_for_a_missing_credential(
    connects_accounts, said, never, request, agent_client, auditor_client, fake_connvo
):
    if connects_accounts:
        request.getfixturevalue("workos")
    standup, retro = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("retro")

    meeting_page = agent_client.get(reverse("meetings:detail", args=["dev", standup]))
    table = agent_client.get(reverse("meetings:table", args=["dev"]), {"ids": f"{standup},{retro}"})
    # The start page said "No token saved" of a lookup the meeting page had called "Connvo
    # account not connected" and the table "Account not connected".
    start_page = agent_client.get(reverse("meetings:lookup")).content.decode()

    # And the audit log's page of the meeting and its entry (they said "No token saved" too).
    log = auditor_client.get(reverse("audit:meeting", args=[standup])).content.decode()
    entry_id = re.search(r'href="/audit/entries/(\d+)/"', log)[1]
    entry = auditor_client.get(reverse("audit:entry", args=[int(entry_id)])).content.decode()

    texts = {
        "meeting page": text_of(escalation_details(meeting_page.content.decode())),
        "table row": text_of(row_of(table.content.decode(), standup)),
        "recent lookups": recent_lookup(start_page, standup),
        "audit log": text_of(
            " ".join(re.findall(r'<span class="outcome[^>]*data-outcome="no_token".*?</span>', log))
        ),
        "audit entry": text_of(re.search(r"<dt>Outcome</dt><dd>.*?</dd>", entry, re.S)[0]),
    }
    assert {where: said in text for where, text in texts.items()} == dict.fromkeys(texts, True)
    assert [where for where, text in texts.items() if never in text] == []


@pytest.mark.usefixtures("workos")
def test_the_csv_says_account_not_connected_on_a_workos_deployment(agent_client, fake_connvo):
    standup, retro = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("retro")

    response = agent_client.get(
        reverse("meetings:table", args=["dev"]), {"ids": f"{standup},{retro}", "format": "csv"}
    )

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["outcome"] == "no_token"
    assert rows[0]["outcome_label"] == CONNECTED


def _failures(unreadable: bool) -> dict:
    """Each failure of a credential, as the console raises it for deployment "dev"."""
    dev = get_deployment("dev")
    return {
        "missing": missing_token("dev", unreadable=unreadable),
        "rejected": token_rejected(dev, detail="401: expired"),
        "not provisioned": not_provisioned(dev, detail="UNAUTHORIZED: not provisioned"),
    }


@pytest.mark.parametrize("kind", ["missing", "rejected", "not provisioned"])
@pytest.mark.parametrize("unreadable", [False, True], ids=["none stored", "unreadable"])
@pytest.mark.parametrize("connects_accounts", [False, True], ids=["pasted tokens", "WorkOS"])
def test_a_stored_outcome_reads_as_the_failure_that_ended_the_lookup(
    connects_accounts, unreadable, kind, request
):
    # The page that holds the failure reads its words from it; a page that holds only what was
    # stored (the recent lookups, the CSV, the audit log) from outcome_handling: they must not
    # part ways.
    if connects_accounts:
        request.getfixturevalue("workos")
    failure = _failures(unreadable)[kind]

    stored = outcome_handling(failure.outcome.value, "dev")

    assert (stored.label, stored.title) == (failure.label, failure.title)
    assert stored == failure.handling
    if kind == "missing":
        assert stored.label == (CONNECTED if connects_accounts else PASTED)
    # Where accounts are connected there is nothing to paste: never "update your token".
    assert (stored.next_steps == "reconnect") == (connects_accounts and kind != "missing")
    assert ("token" in failure.message.replace("Tokens page", "")) == (not connects_accounts)


@pytest.mark.usefixtures("workos")
def test_only_the_credentials_outcomes_read_otherwise_where_accounts_are_connected():
    changed = [
        outcome for outcome in Outcome if outcome_handling(outcome, "dev") != HANDLING[outcome]
    ]

    assert changed == [Outcome.NO_TOKEN, Outcome.TOKEN_REJECTED, Outcome.NOT_PROVISIONED]
    # An outcome this console does not know keeps its own words, on any deployment.
    assert outcome_handling("from_a_newer_console", "dev").label == "From a newer console"


@pytest.mark.usefixtures("workos")
def test_a_connected_account_that_connvo_refuses_is_to_be_reconnected_not_pasted(
    agent_client, fake_connvo
):
    """A session Connvo no longer accepts (its keys rotated, the session revoked on its side)
    said "Copy a fresh token from Connvo and update it on the Tokens page", with a button "Update
    your token", on a deployment whose Tokens page has nowhere to paste one."""
    connect(agent_client, fake_connvo)
    fake_connvo.misbehave("expired_tokens")

    response = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )

    page = text_of(response.content.decode())
    assert response.status_code == 403
    assert "Reconnect your Connvo account for dev" in page
    assert "did not accept your connected account's session" in page
    assert "Connvo did not accept your connected account" in page  # the heading
    for never in ("Copy a fresh token", "Update your token", "save it on the Tokens page"):
        assert never not in page
