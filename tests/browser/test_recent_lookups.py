"""The start page's recent lookups in a real browser: each outcome a lookup can end with is shown
as the triage table shows it, a pill coloured by its table group (calm for a meeting that is not
there or not shared, amber for what the agent fixes, red for a failure). Once, only the three
outcomes whose values happened to match a table group's name were coloured at all."""

import pytest
from playwright.sync_api import Page, expect

from audit.models import Action, Via
from audit.services import Origin, record
from connvo_admin.outcomes import HANDLING, Outcome, TableGroup, recorded_outcomes
from meetings.views import recent

pytestmark = pytest.mark.django_db(transaction=True)

# The colour each table group's pill takes (static/css/console.css).
BACKGROUND = {
    TableGroup.NOT_VISIBLE: "--info-bg",
    TableGroup.NOT_FOUND: "--info-bg",
    TableGroup.INVALID_ID: "--info-bg",
    TableGroup.TOKEN: "--warn-bg",
    TableGroup.LOOKUP_LIMIT: "--warn-bg",
    TableGroup.FAILED: "--error-bg",
}
# What the start page lists: every outcome the log records, but found ones (shown by their state)
# and the two that never named a meeting (audit/selectors.py's recent_lookups).
LISTED = [
    outcome
    for outcome in recorded_outcomes()
    if outcome not in (Outcome.FOUND, Outcome.INVALID_ID, Outcome.UNKNOWN_DEPLOYMENT)
]


def colour_of(page: Page, css_value: str) -> str:
    """A CSS value as the browser computes a background of it ("rgb(238, 243, 252)")."""
    return page.evaluate(
        """(value) => {
            const probe = document.createElement("span");
            probe.style.backgroundColor = value;
            document.body.appendChild(probe);
            const colour = getComputedStyle(probe).backgroundColor;
            probe.remove();
            return colour;
        }""",
        css_value,
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_outcome_in_the_recent_lookups_is_coloured_by_its_table_group(
    page: Page, live_server, agent, sign_in, screenshot, monkeypatch, scheme
):
    monkeypatch.setattr(recent, "RECENT_LOOKUPS", len(LISTED))
    origin = Origin(user=agent, username="agent", client_ip="10.0.0.7", user_agent="pytest")
    for n, outcome in enumerate(LISTED):
        record(
            origin=origin,
            action=Action.LOOKUP,
            via=Via.PAGE,
            deployment="dev",
            meeting_id=f"jd7f3s4h7yvxqrw0c8h5k3x2kn6r{n:04d}",
            outcome=outcome,
        )
    page.emulate_media(color_scheme=scheme)
    sign_in("agent")

    pills = page.locator(".recent__outcome")
    expect(pills).to_have_count(len(LISTED))
    for outcome in LISTED:
        handling = HANDLING[outcome]
        pill = page.locator(f'.recent__outcome[data-outcome="{outcome}"]')
        expect(pill).to_have_text(handling.label)
        expect(pill).to_have_css(
            "background-color", colour_of(page, f"var({BACKGROUND[handling.table_group]})")
        )
        expect(pill).to_have_css("border-top-style", "solid")
    screenshot(f"02-recent-lookups-every-outcome-{scheme}")
