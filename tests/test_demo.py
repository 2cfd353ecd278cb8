"""`make demo`'s launcher (fakeconnvo/demo.py), run as a newcomer runs it: it seeds the three
logins, prints every seeded meeting on both deployments, a not-found ID and working failure
switches, verifies the audit chain, and serves one line per request."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.production import ROOT, free_port

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    # With pytest-xdist, all on one worker: one demo (module-scoped), stopped by the last test.
    pytest.mark.xdist_group("demo"),
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp_path: Path = tmp_path_factory.mktemp("demo")
    console, fake, fake_prod = free_port(), free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "connvo_admin.settings",
        # As `make demo`: production mode (DEBUG off) refuses the demo secrets.
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "CONNVO_DEPLOYMENTS": f"demo=http://127.0.0.1:{fake},demo-prod=http://127.0.0.1:{fake_prod}",
        "CONNVO_DEFAULT_DEPLOYMENT": "demo",
        "CONNVO_PRODUCTION_DEPLOYMENTS": "demo-prod",
        "WORKOS_CLIENT_ID_DEMO": "client_01DEMOCONSOLE",
        "WORKOS_API_KEY_DEMO": "sk_test_demo_console",
        "WORKOS_BASE_URL_DEMO": f"http://127.0.0.1:{fake}",
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)  # noqa: S603
    process = subprocess.Popen(  # noqa: S603 (the test's own command line)
        [sys.executable, "-m", "fakeconnvo.demo", "--addrport", f"127.0.0.1:{console}"],
        cwd=ROOT,
        env=env | {"DEBUG": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Ctrl-C stops" in line:
            break
    try:
        yield f"http://127.0.0.1:{console}", lines, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for(url: str) -> None:
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)


def _sign_in(base: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        timeout=10,
    )
    return session


def test_demo_prints_every_page_state_and_seeds_three_logins(demo):
    base, lines, _ = demo
    banner = "\n".join(lines)
    assert "demo / demo" in banner
    assert "auditor / auditor" in banner
    assert "admin / admin" in banner
    for deployment in ("demo", "demo-prod"):
        links = re.findall(rf"{re.escape(base)}/meetings/{deployment}/\w+/", banner)
        assert len(links) >= 9, f"every seeded meeting on {deployment}"
    assert banner.count("not found") == 2

    _wait_for(f"{base}/accounts/login/")
    auditor = _sign_in(base, "auditor", "auditor")
    audit_page = auditor.get(f"{base}/audit/", timeout=10).text
    assert "never verified" not in audit_page
    assert "OK" in audit_page
    admin = _sign_in(base, "admin", "admin")
    assert admin.get(f"{base}/admin/", timeout=10).status_code == 200
    agent = _sign_in(base, "demo", "demo")
    tokens_page = agent.get(f"{base}/tokens/", timeout=10).text
    assert "Connected" in tokens_page
    assert "Replace it before then" not in tokens_page  # the demo starts without a warning


def test_each_printed_failure_switch_is_accepted_by_the_fake(demo):
    _, lines, _ = demo
    commands = [line.split("curl ", 1)[1] for line in lines if "curl " in line]
    assert len(commands) >= 8
    for command in commands:
        parts = shlex.split(command)
        body, url = parts[parts.index("-sd") + 1], parts[-1]
        answer = requests.post(url, data=body, timeout=5)
        assert answer.status_code == 200, (command, answer.text)
        json.loads(answer.text)


def test_demo_logs_one_line_per_request(demo):
    """Runs last: it stops the demo to read everything it printed."""
    base, _, process = demo
    _wait_for(f"{base}/accounts/login/")
    requests.get(f"{base}/accounts/login/?marker=once", timeout=10)
    process.send_signal(signal.SIGINT)
    # Under load runserver can take a while to wind down after Ctrl-C.
    output = process.communicate(timeout=90)[0]
    assert '"logger": "console.request"' in output
    assert '"GET /accounts/login/?marker=once' not in output  # runserver's own line
    assert "Apply all migrations" not in output
