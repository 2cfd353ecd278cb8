"""Security headers and cookies: the strict CSP on every page, HSTS, no framing, referrer
policy, and session and CSRF cookies that are Secure, HttpOnly and SameSite behind TLS."""

from __future__ import annotations

import json
import os
import re

import pytest
from django.test import Client

from tests.production import ROOT, collect_static, manage, production_env

# The tests through Django's test client use the run's database; the shipped-settings probe below
# runs on a database of its own (in memory, in its subprocess), so the PostgreSQL run leaves it
# out (`--database-tests-only`): it would run the same there.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "path"),
    [("client", "/accounts/login/"), ("agent_client", "/"), ("agent_client", "/tokens/")],
)
def test_every_page_carries_the_strict_csp(request, who, path):
    response = request.getfixturevalue(who).get(path)

    assert response.status_code == 200

    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert re.search(r"script-src 'self' 'nonce-[^']+'", policy)
    assert "style-src 'self';" in policy  # no 'unsafe-inline'
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-eval" not in policy and "unsafe-inline" not in policy


@pytest.mark.django_db
def test_the_page_scripts_carry_the_csp_nonce(client: Client):
    response = client.get("/accounts/login/")

    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    html = response.content.decode()
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts
    assert all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert "style=" not in html


@pytest.mark.django_db
def test_pages_cannot_be_framed_and_keep_the_referrer_on_site(client: Client):
    response = client.get("/accounts/login/")

    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


# --- Behind the TLS proxy, as shipped -------------------------------------------------------
# These run the console in a subprocess with the settings `.env.example` ships (secrets, database
# and cache swapped for test ones), so they test the console's configuration rather than settings
# a test assigned itself.

SHIPPED_PROBE = """
import json
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

call_command("migrate", verbosity=0, interactive=False)
User.objects.create_user("agent", password="pw")
host = {"HTTP_HOST": "console.intranet.example"}
tls = {**host, "HTTP_X_FORWARDED_PROTO": "https"}
client = Client()
plain = client.get("/accounts/login/", **host)
secure = client.get("/accounts/login/", **tls)
signed_in = client.post("/accounts/login/", {"username": "agent", "password": "pw"}, **tls)
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "secure": [secure.status_code, secure.get("Strict-Transport-Security")],
    "signed_in": signed_in.status_code,
    "cookies": {
        name: {"secure": morsel["secure"], "httponly": morsel["httponly"],
               "samesite": morsel["samesite"]}
        for name, morsel in signed_in.cookies.items()
    },
}))
"""


def shipped_env(static_root) -> dict[str, str]:
    """`.env.example` as a production host would load it, with test secrets, database and cache."""
    shipped = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            shipped[name.strip()] = value.strip()
    test_only = production_env(STATIC_ROOT=str(static_root))
    overrides = {
        name: test_only[name]
        for name in (
            "SECRET_KEY",
            "TOKEN_ENCRYPTION_KEYS",
            "AUDIT_CHAIN_KEY",
            "DATABASE_URL",
            "CACHE_URL",
            "CACHE_KEY_PREFIX",
            "STATIC_ROOT",
        )
    }
    inherited = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    inherited |= {"DJANGO_SETTINGS_MODULE": "connvo_admin.settings", "PYTHONDONTWRITEBYTECODE": "1"}
    return {name: value for name, value in shipped.items() if value} | overrides | inherited


# With pytest-xdist, the tests that read `shipped` (module-scoped) run on one worker: one probe.
SHIPPED_GROUP = pytest.mark.xdist_group("shipped")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict:
    result = manage("shell", "-c", SHIPPED_PROBE, env=shipped_env(collect_static(tmp_path_factory)))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@SHIPPED_GROUP
def test_behind_the_tls_proxy_pages_send_hsts(shipped):
    # .env.example starts at the default hour, as docs/deploy.md says (a year once HTTPS works).
    assert shipped["secure"] == [200, "max-age=3600; includeSubDomains"]


@SHIPPED_GROUP
def test_plain_http_is_redirected_to_https(shipped):
    assert shipped["plain"] == [301, "https://console.intranet.example/accounts/login/"]


@SHIPPED_GROUP
def test_session_and_csrf_cookies_are_secure_httponly_and_samesite(shipped):
    assert shipped["signed_in"] == 302
    for name in ("sessionid", "csrftoken"):
        cookie = shipped["cookies"][name]
        assert cookie["secure"] is True, name
        assert cookie["httponly"] is True, name
        assert cookie["samesite"] == "Lax", name
