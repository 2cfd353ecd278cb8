"""The client address the audit log and sign-in lockouts record (connvo_admin/client_address.py):
X-Forwarded-For is believed only when the request came from a proxy in TRUSTED_PROXIES, and then
only as far back as the nearest address that is not itself a trusted proxy."""

from __future__ import annotations

import ipaddress

import pytest
from django.db.models import GenericIPAddressField
from django.test import RequestFactory, override_settings
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from audit import chain
from audit.models import Action, AuditEntry
from connvo_admin.client_address import client_ip
from tests.conftest import PASSWORD

PROXY = "10.0.0.1"
INNER_PROXY = "10.0.0.2"
CLIENT = "203.0.113.5"
SPOOFED = "198.51.100.66"


def signed_in_from(client, *, remote_addr: str, forwarded_for: str | None = None) -> str:
    """Sign in as the agent and return the address the audit log recorded for it."""
    headers = {"REMOTE_ADDR": remote_addr}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    response = client.post(
        reverse("accounts:login"), {"username": "agent", "password": PASSWORD}, **headers
    )
    assert response.status_code == 302
    return AuditEntry.objects.get(action=Action.SIGN_IN).client_ip


@pytest.mark.django_db
def test_without_trusted_proxies_the_header_is_ignored(client, agent, settings):
    settings.TRUSTED_PROXIES = []

    assert signed_in_from(client, remote_addr="192.0.2.10", forwarded_for=CLIENT) == "192.0.2.10"


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_forwarded_client_is_recorded(client, agent, settings):
    settings.TRUSTED_PROXIES = [PROXY]

    assert signed_in_from(client, remote_addr=PROXY, forwarded_for=CLIENT) == CLIENT


@pytest.mark.django_db
def test_an_untrusted_client_sending_the_header_is_recorded_as_itself(client, agent, settings):
    settings.TRUSTED_PROXIES = [PROXY]

    recorded = signed_in_from(client, remote_addr="192.0.2.10", forwarded_for=CLIENT)

    assert recorded == "192.0.2.10"


@pytest.mark.django_db
def test_a_chain_is_read_from_the_nearest_hop_back_to_the_first_untrusted_one(
    client, agent, settings
):
    """The client may have sent its own X-Forwarded-For (SPOOFED); each proxy appends the
    address it saw, so only the right end of the chain, behind trusted proxies, is believed."""
    settings.TRUSTED_PROXIES = [PROXY, INNER_PROXY]

    recorded = signed_in_from(
        client, remote_addr=PROXY, forwarded_for=f"{SPOOFED}, {CLIENT}, {INNER_PROXY}"
    )

    assert recorded == CLIENT


def address_from(*, remote_addr: str, forwarded_for: str | None) -> str | None:
    headers = {"REMOTE_ADDR": remote_addr}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client_ip(RequestFactory().get("/", **headers))


def test_an_unreadable_hop_stops_the_walk_at_the_proxy(settings):
    settings.TRUSTED_PROXIES = [PROXY]

    assert address_from(remote_addr=PROXY, forwarded_for=f"{CLIENT}, junk") == PROXY


def test_a_chain_of_only_trusted_proxies_records_the_nearest_one(settings):
    settings.TRUSTED_PROXIES = [PROXY, INNER_PROXY]

    assert address_from(remote_addr=PROXY, forwarded_for=INNER_PROXY) == PROXY
    assert address_from(remote_addr=PROXY, forwarded_for=None) == PROXY


def test_addresses_are_normalised(settings):
    settings.TRUSTED_PROXIES = [PROXY]

    recorded = address_from(remote_addr=PROXY, forwarded_for=" 2001:DB8:0:0::1 ")

    assert recorded == "2001:db8::1"


addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
header_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(addresses, st.text(max_size=12)), max_size=6).map(", ".join),
)


@given(remote=addresses.filter(lambda address: address != PROXY), forwarded=header_text)
@override_settings(TRUSTED_PROXIES=[PROXY])
def test_an_untrusted_sender_can_never_choose_its_address(remote, forwarded):
    recorded = address_from(remote_addr=remote, forwarded_for=forwarded)

    assert recorded == str(ipaddress.ip_address(remote))


@given(forwarded=header_text)
@override_settings(TRUSTED_PROXIES=[PROXY])
def test_behind_the_proxy_the_address_is_the_proxy_or_an_untrusted_hop_of_the_header(forwarded):
    recorded = address_from(remote_addr=PROXY, forwarded_for=forwarded)

    hops = {str(ipaddress.ip_address(h.strip())) for h in forwarded.split(",") if _is_ip(h)}
    assert recorded == PROXY or (recorded in hops and recorded != PROXY)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True


@pytest.mark.django_db
def test_an_address_with_an_interface_zone_is_recorded_without_it(client, agent, settings):
    """A link-local IPv6 address can name the host's interface ("fe80::1%eth0"). The database
    stores the address without it, so the entry's MAC must not cover it either: the chain would
    not verify."""
    settings.TRUSTED_PROXIES = []

    assert signed_in_from(client, remote_addr="fe80::1%eth0") == "fe80::1"
    assert chain.verify().ok


@given(remote=addresses, zone=st.none() | st.text(min_size=1, max_size=12))
def test_a_recorded_address_is_stored_exactly_as_recorded(remote, zone):
    recorded = address_from(
        remote_addr=remote if zone is None else f"{remote}%{zone}", forwarded_for=None
    )

    # An IPv4 address has no zone: with one it is not an address at all.
    assert recorded is not None or zone is not None
    assert recorded is None or GenericIPAddressField().get_prep_value(recorded) == recorded
