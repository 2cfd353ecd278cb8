"""Which proxies are believed (TRUSTED_PROXIES, one list): the console believes their
X-Forwarded-For (the client's address) and gunicorn their X-Forwarded-Proto (forwarded_allow_ips).
In production mode the default is nginx on the same host, as docs/deploy.md deploys it, so the
clients behind it keep addresses of their own in the audit log and the sign-in lockouts."""

from __future__ import annotations

import ipaddress

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from gunicorn.config import Config
from hypothesis import given
from hypothesis import strategies as st

from audit.models import Action, AuditEntry
from connvo_admin.environment import Env
from connvo_admin.gunicorn_config import proxy_and_logs
from tests.conftest import PASSWORD
from tests.settings_loader import load_settings, production_environment

NGINX_DEFAULT = ["127.0.0.1", "::1"]


def test_production_mode_trusts_nginx_on_the_same_host_unless_told_otherwise():
    assert load_settings(production_environment())["TRUSTED_PROXIES"] == NGINX_DEFAULT
    assert load_settings(production_environment(TRUSTED_PROXIES=""))["TRUSTED_PROXIES"] == []
    assert load_settings(production_environment(TRUSTED_PROXIES="10.0.0.5, 10.0.0.6"))[
        "TRUSTED_PROXIES"
    ] == ["10.0.0.5", "10.0.0.6"]
    # The demo (runserver, no proxy in front) believes no one.
    assert load_settings(production_environment(DEBUG="true"))["TRUSTED_PROXIES"] == []


@pytest.mark.parametrize("trusted", [NGINX_DEFAULT, ["10.0.0.5"], []])
def test_gunicorn_believes_the_scheme_from_exactly_the_proxies_believed_for_the_address(trusted):
    config = Config()
    config.set(
        "forwarded_allow_ips",
        proxy_and_logs({"TRUSTED_PROXIES": trusted, "LOG_LEVEL": "INFO"})["forwarded_allow_ips"],
    )

    assert config.forwarded_allow_ips == trusted


def via_nginx(client_ip: str, username: str, password: str):
    # nginx on the same host: REMOTE_ADDR nginx's, X-Forwarded-For the client's (nginx-site.conf).
    return Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=client_ip).post(
        "/accounts/login/", {"username": username, "password": password}
    )


@pytest.mark.django_db
def test_behind_nginx_one_clients_failed_sign_ins_do_not_lock_out_the_others(settings, agent):
    settings.TRUSTED_PROXIES = load_settings(production_environment())["TRUSTED_PROXIES"]
    for n in range(settings.SIGN_IN_ADDRESS_FAILURE_LIMIT):
        via_nginx(f"10.9.0.{n + 1}", f"typo-user-{n}", "wrong")

    response = via_nginx("10.1.1.1", "agent", PASSWORD)

    assert response.status_code == 302
    assert AuditEntry.objects.get(action=Action.SIGN_IN).client_ip == "10.1.1.1"


def proxy_warnings() -> list[checks.CheckMessage]:
    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    return [message for message in found if message.id == "connvo.W003"]


def test_check_deploy_warns_behind_a_proxy_that_is_not_trusted_for_the_address(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = []

    (warning,) = proxy_warnings()

    assert "TRUSTED_PROXIES is empty" in warning.msg
    assert "lock everyone out" in warning.msg


def test_check_deploy_is_quiet_when_the_proxy_is_trusted_or_there_is_none(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = NGINX_DEFAULT
    assert proxy_warnings() == []

    settings.SECURE_PROXY_SSL_HEADER = None
    settings.TRUSTED_PROXIES = []
    assert proxy_warnings() == []


def env_with(**values: str) -> Env:
    env = Env()
    env.ENVIRON = values
    return env


@given(st.lists(st.ip_addresses()), st.sampled_from([",", ", ", " ,\t"]))
def test_any_list_of_addresses_is_read_in_normal_form(addresses, separator):
    env = env_with(TRUSTED_PROXIES=separator.join(address.exploded for address in addresses))

    read = env.addresses("TRUSTED_PROXIES", default=["192.0.2.1"])

    assert read == list(dict.fromkeys(str(address) for address in addresses))


@given(st.lists(st.ip_addresses().map(str)), st.text(min_size=1).filter(lambda t: "," not in t))
def test_anything_that_is_not_an_address_is_refused_by_name(addresses, entry):
    try:
        ipaddress.ip_address(entry.strip())
    except ValueError:
        pass
    else:
        return  # an address after all
    if not entry.strip():
        return  # an empty entry is skipped, like a trailing comma
    env = env_with(TRUSTED_PROXIES=",".join([*addresses, entry]))

    with pytest.raises(ImproperlyConfigured, match=r"^TRUSTED_PROXIES lists exact IP addresses"):
        env.addresses("TRUSTED_PROXIES", default=[])
