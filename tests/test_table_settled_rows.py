"""A triage table stops asking for a row exactly when the page of that meeting would stop polling:
for every outcome a lookup can end with, and for a found meeting in every state. One decision
(connvo_admin/outcomes.py's `live` column, and the meeting's state) serves both, so they cannot
part ways again (a WorkOS outage kept the meeting page polling and settled the table's rows for
good, telling the agent to fix their token)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from connvo_admin.outcomes import HANDLING, LookupFailed, Outcome, Severity, TableGroup
from meetings import triage
from meetings.connvo import FINAL_STATES, Lookup, Meeting, MeetingState
from meetings.live import plan_after_failure, plan_after_success
from meetings.lookups import Answer
from tests.test_credentials import connect, expire_soon
from tests.test_table_view import HTMX, poller, refresh, summary_text, table_url

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
FAILED_OUTCOMES = [outcome for outcome in Outcome if outcome != Outcome.FOUND]
# What the page showed for the row until now: nothing yet, or a meeting (a refresh that fails for
# a passing reason then keeps its values, "not refreshed").
SHOWN = {"first look": None, "showed a meeting": triage.GROUP_BY_NAME["active"]}
STATES = [*MeetingState, "archived", None]  # a state the console does not know, and none


def failure(outcome: Outcome) -> LookupFailed:
    failed = type(f"Failed{outcome.name.title()}", (LookupFailed,), {"outcome": outcome})
    return failed("It failed.")


def failed_row(outcome: Outcome, shown: triage.Group | None) -> triage.Row:
    return triage.Row(0, Answer("dev", "m1", error=failure(outcome)), shown)


def found_row(state) -> tuple[triage.Row, Meeting]:
    meeting = Meeting(id="m1", state=state, raw={"_id": "m1", "state": state})
    lookup = Lookup(meeting=meeting, deployment=None, http_status=200, latency_ms=1, attempts=1)
    return triage.Row(0, Answer("dev", "m1", lookup=lookup)), meeting


def meeting_page_polls_after(outcome: Outcome) -> bool:
    return plan_after_failure(failure(outcome), failures=0, seen="").polling


def table_polls(row: triage.Row) -> bool:
    return triage.table_plan([row], failures=0, checked_at=NOW).polling


@pytest.mark.parametrize("shown", list(SHOWN.values()), ids=list(SHOWN))
@pytest.mark.parametrize("outcome", FAILED_OUTCOMES, ids=str)
def test_the_table_settles_a_row_exactly_when_the_meeting_page_stops_polling(outcome, shown):
    polls = meeting_page_polls_after(outcome)
    row = failed_row(outcome, shown)

    assert row.group.settled is not polls, (
        f"{outcome}: the meeting page {'keeps polling' if polls else 'stops'}, "
        f"the table's row is in {row.group.name!r} (settled={row.group.settled})"
    )
    assert table_polls(row) is polls


@pytest.mark.parametrize("state", STATES, ids=str)
def test_a_found_meeting_is_settled_exactly_when_its_page_stops_polling(state):
    row, meeting = found_row(state)

    polls = plan_after_success(meeting).polling

    assert row.group.settled is not polls
    assert table_polls(row) is polls


@pytest.mark.parametrize("state", list(MeetingState), ids=str)
def test_every_state_s_group_is_settled_exactly_when_a_meeting_in_it_is_not_live(state):
    """Which states are final is connvo.FINAL_STATES's to say; the table's groups and
    Meeting.is_live both ask it (a new final state in one only would split them)."""
    group = triage.GROUP_BY_NAME[state.value]
    meeting = Meeting(id="m1", state=state)

    assert group.found
    assert group.settled is not meeting.is_live
    assert group.settled is (state in FINAL_STATES)


def test_an_unknown_state_is_neither_final_nor_settled():
    assert Meeting(id="m1", state="archived").is_live
    assert not triage.GROUP_BY_NAME["other_state"].settled


def test_every_outcome_group_is_settled_as_its_outcomes_decide():
    for group in triage.GROUPS:
        outcomes = [o for o in Outcome if HANDLING[o].table_group == group.name]
        if group.found:
            assert outcomes == []
            continue
        assert outcomes, f"no outcome in {group.name!r}"
        assert {not HANDLING[o].live.keeps_going for o in outcomes} == {group.settled}


def test_the_token_group_holds_only_what_the_agent_fixes_on_the_tokens_page():
    """The group says "need your token": each of its outcomes' next step is on the Tokens page
    (a WorkOS outage is not one: nothing the agent does there helps)."""
    token_steps = {"add-token", "reconnect", "update-token", "check-token"}
    in_group = [o for o in Outcome if HANDLING[o].table_group == TableGroup.TOKEN]
    assert in_group
    steps = {outcome: HANDLING[outcome].next_steps for outcome in in_group}
    assert {o: step for o, step in steps.items() if step not in token_steps} == {}
    assert HANDLING[Outcome.AUTH_UNAVAILABLE].table_group == TableGroup.FAILED


def test_the_failed_group_does_not_blame_connvo_for_the_console_s_own_failures():
    failed = triage.GROUP_BY_NAME[TableGroup.FAILED]
    console_failures = [
        o
        for o in Outcome
        if HANDLING[o].table_group == TableGroup.FAILED
        and HANDLING[o].severity == Severity.CONSOLE_FAILED
    ]
    assert Outcome.AUDIT_UNAVAILABLE in console_failures
    assert "connvo" not in failed.label.lower()


@pytest.mark.django_db
@pytest.mark.usefixtures("workos")
def test_a_workos_outage_keeps_a_table_row_asked_as_it_keeps_the_meeting_page_polling(
    agent_client, agent, fake_connvo
):
    connect(agent_client, fake_connvo)
    expire_soon(agent)
    fake_connvo.misbehave("workos_down")
    meeting = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    url = table_url(fake_connvo, "standup")

    page_refresh = agent_client.get(meeting, **HTMX)
    first = agent_client.get(url).content.decode()

    assert page_refresh.status_code == 200  # not 286: the meeting page keeps polling
    assert poller(page_refresh.content.decode())["status"] == "failing"
    assert summary_text(first) == "1 could not be looked up"
    assert "need your token" not in first
    vals = poller(first)["vals"]
    assert (vals["done"], vals["known"]) == ("", "0f")
    assert poller(first)["status"] == "failing"

    # WorkOS is back: the row is asked again and shows the meeting.
    fake_connvo.reset_behaviour()
    html = refresh(agent_client, url, vals).content.decode()
    assert summary_text(html) == "1 active"
