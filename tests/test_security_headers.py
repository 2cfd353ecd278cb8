"""Security headers and cookies: the strict CSP on every page, HSTS, no framing, referrer
policy, and session and CSRF cookies that are Secure, HttpOnly and SameSite behind TLS."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def behind_tls(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    return settings


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


def test_the_page_scripts_carry_the_csp_nonce(client: Client):
    response = client.get("/accounts/login/")

    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    html = response.content.decode()
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts
    assert all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert "style=" not in html


def test_pages_cannot_be_framed_and_keep_the_referrer_on_site(client: Client):
    response = client.get("/accounts/login/")

    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_behind_the_tls_proxy_pages_send_hsts(client: Client, behind_tls):
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_plain_http_is_redirected_to_https(client: Client, behind_tls):
    response = client.get("/accounts/login/")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


def test_session_and_csrf_cookies_are_secure_httponly_and_samesite(
    client: Client, agent, behind_tls
):
    client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    response = client.post(
        "/accounts/login/",
        {"username": "agent", "password": PASSWORD},
        HTTP_X_FORWARDED_PROTO="https",
    )

    assert response.status_code == 302
    for name in ("sessionid", "csrftoken"):
        cookie = response.cookies[name]
        assert cookie["secure"] is True, name
        assert cookie["httponly"] is True, name
        assert cookie["samesite"] == "Lax", name
