"""The page's script says relative times and overruns again as the time passes
(static/js/console.js `relative`, `duration`); the server said them first
(meetings/templatetags/meeting_format.py `relative`, `overrun`). The two must say the same
words at every instant, or a page reads "2 min ago" and then, a tick later with no time passed,
"3 min ago". Here the browser's words are read off the page at a fixed instant of its clock
and held to the server's for the same instants: the edges of each unit, halves (which Python's
round() and the script's Math.round() once rounded differently), and a spread of others."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from playwright.sync_api import Page

from meetings.templatetags.meeting_format import overrun, relative

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2027, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
EDGES = [
    0, 1, 29_999, 30_000, 30_001, 59_999, 60_000, 89_999, 90_000, 90_001, 150_000, 210_000,
    59 * MINUTE + 29_999, 59 * MINUTE + 30_000, 59 * MINUTE + 30_001, 60 * MINUTE,
    90 * MINUTE, 150 * MINUTE, 23 * HOUR + 29 * MINUTE, 23 * HOUR + 30 * MINUTE,
    24 * HOUR, 36 * HOUR, 60 * HOUR, 365 * DAY + 12 * HOUR,
]  # fmt: skip
SPREAD = random.Random(20261207)


def offsets() -> list[int]:
    """Milliseconds before NOW (after it, for the negative ones): the edges both ways, and 300
    drawn from every scale (the same each run)."""
    drawn = [SPREAD.randrange(0, 10**scale) for scale in range(3, 11) for _ in range(40)]
    return sorted({*EDGES, *(-edge for edge in EDGES), *drawn, *(-d for d in drawn[::3])})


def test_the_page_says_times_in_the_servers_words(
    page: Page, live_server, agent, sign_in, screenshot
):
    moments = offsets()
    sign_in("agent")
    page.clock.install()
    page.goto(f"{live_server.url}/")
    page.clock.set_fixed_time(NOW)
    page.evaluate(
        """([now, offsets]) => {
            const list = document.createElement("ol");
            list.id = "time-words";
            for (const offset of offsets) {
                const at = new Date(now - offset).toISOString();
                const item = document.createElement("li");
                // An overrun is only ever drawn for an end that has passed.
                item.innerHTML = `<time data-relative datetime="${at}">-</time> | ` +
                    (offset > 0 ? `<time data-overrun datetime="${at}">-</time>` : "-");
                list.append(item);
            }
            document.querySelector("main").append(list);
        }""",
        [NOW.timestamp() * 1000, moments],
    )
    page.clock.run_for(15_000)  # the script's ticks: each second, and each 15 s

    said = page.locator("#time-words li").all_inner_texts()
    with time_machine.travel(NOW, tick=False):
        expected = [
            f"{relative(NOW - timedelta(milliseconds=offset))} | "
            + (overrun(NOW - timedelta(milliseconds=offset), NOW) if offset > 0 else "-")
            for offset in moments
        ]
    mismatches = [
        (offset, browser, server)
        for offset, browser, server in zip(moments, said, expected, strict=True)
        if browser != server
    ]
    assert mismatches == []
    assert {"just now | 1 min", "3 min ago | 3 min", "in 3 min | -", "3 h ago | 2 h 30 min"} <= {
        *expected
    }
