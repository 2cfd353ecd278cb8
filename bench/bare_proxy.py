"""The floor for bench/live_load.py: a WSGI app that only makes the console's `getMeeting` call to
Connvo and returns the body, served by the same gunicorn settings as the console.

    gunicorn -c gunicorn.conf.py bench.bare_proxy:application

Reads BARE_PROXY_URL (the deployment), BARE_PROXY_TOKEN and BARE_PROXY_MEETING from the
environment. Not part of the console: no sign-in, no audit, nothing stored."""

from __future__ import annotations

import os
import threading

import requests

GET_MEETING_PATH = "/api/run/meetings/queries/getMeeting"

_local = threading.local()


def _session() -> requests.Session:
    # One pooled session per thread, made after gunicorn forked the worker.
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        _local.session = session
    return session


def application(environ, start_response):
    answer = _session().post(
        os.environ["BARE_PROXY_URL"] + GET_MEETING_PATH,
        json={"args": {"meetingId": os.environ["BARE_PROXY_MEETING"]}, "format": "json"},
        headers={"Authorization": f"Bearer {os.environ['BARE_PROXY_TOKEN']}"},
        timeout=(3.05, 10),
    )
    body = answer.content
    start_response(
        f"{answer.status_code} {answer.reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
