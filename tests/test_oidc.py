"""Sign-in through the company's identity provider (OpenID Connect), against a fake provider on
loopback: the provider's groups decide Support and Auditor; people in neither group, console
superusers and identity tokens minted for another application are refused with a reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import ProviderIdentity
from audit.models import Action, AuditEntry
from fakeoidc import FakeOIDC
from tests.conftest import PASSWORD, _user

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(settings) -> Iterator[FakeOIDC]:
    fake = FakeOIDC().start()
    for name, value in fake.settings().items():
        setattr(settings, name, value)
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = "Example SSO"
    settings.OIDC_SUPPORT_GROUPS = ["connvo-support"]
    settings.OIDC_AUDITOR_GROUPS = ["connvo-audit"]
    try:
        yield fake
    finally:
        fake.stop()


def sign_in_with_idp(client: Client, next_path: str = "/") -> object:
    """The browser's round trip: console → provider (approves) → console's callback."""
    start = client.get("/accounts/oidc/start/", {"next": next_path})
    assert start.status_code == 302, start
    approved = requests.get(start["Location"], allow_redirects=False, timeout=5)
    if approved.status_code != 302:
        return approved
    back = urlsplit(approved.headers["Location"])
    return client.get(f"{back.path}?{back.query}", follow=True)


def groups_of(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_the_sign_in_page_offers_the_identity_provider(client: Client, idp):
    page = client.get("/accounts/login/?next=/tokens/").content.decode()

    assert "Sign in with Example SSO" in page
    assert 'href="/accounts/oidc/start/?next=/tokens/"' in page


def test_a_support_person_signs_in_and_gets_an_account(client: Client, idp):
    idp.sign_in_as("dana", groups=("connvo-support", "everyone"), email="dana@example.com")

    response = sign_in_with_idp(client, next_path="/tokens/")

    assert response.redirect_chain[-1][0] == "/tokens/"
    assert response.status_code == 200
    assert response.context["user"].username == "dana"
    assert groups_of("dana") == {"Support"}
    dana = User.objects.get(username="dana")
    assert dana.email == "dana@example.com"
    assert not dana.has_usable_password()
    # The code flow used PKCE and the provider's published key.
    assert idp.calls[:4] == ["GET /authorize", "POST /token", "GET /jwks", "GET /userinfo"]


def test_the_providers_groups_decide_support_and_auditor_at_every_sign_in(client: Client, idp):
    idp.sign_in_as("erin", groups=("connvo-support",))
    sign_in_with_idp(client)
    existing = User.objects.get(username="erin")
    client.logout()
    idp.sign_in_as("erin", groups=("connvo-audit",))

    sign_in_with_idp(client)

    assert groups_of("erin") == {"Auditor"}
    assert User.objects.get(pk=existing.pk).username == "erin"


def test_a_local_account_is_never_taken_over_by_a_provider_account_of_the_same_name(
    client: Client, idp
):
    local = _user("erin", "Support")
    idp.sign_in_as("erin", groups=("connvo-audit",))

    response = sign_in_with_idp(client)

    assert "_auth_user_id" not in client.session
    assert "already a console account named erin" in response.content.decode()
    assert groups_of("erin") == {"Support"}
    assert not ProviderIdentity.objects.filter(user=local).exists()


def test_the_account_is_linked_to_the_providers_identity_not_its_username(client: Client, idp):
    idp.sign_in_as("dana", groups=("connvo-support",))
    sign_in_with_idp(client)
    dana = User.objects.get(username="dana")
    identity = ProviderIdentity.objects.get(user=dana)
    assert identity.issuer == idp.url
    assert identity.subject == idp.person.claims()["sub"]
    client.logout()
    # The provider renames the person; the console account follows the identity.
    idp.sign_in_as("dana.smith", groups=("connvo-support",), subject=identity.subject)

    sign_in_with_idp(client)

    assert int(client.session["_auth_user_id"]) == dana.pk


def test_someone_else_given_a_linked_accounts_username_does_not_get_it(client: Client, idp):
    idp.sign_in_as("dana", groups=("connvo-support",))
    sign_in_with_idp(client)
    client.logout()
    idp.sign_in_as("dana", groups=("connvo-support",), subject="sub-someone-else")

    response = sign_in_with_idp(client)

    assert "_auth_user_id" not in client.session
    assert "already a console account named dana" in response.content.decode()


def test_an_identity_token_from_another_issuer_is_refused(client: Client, idp, settings):
    settings.OIDC_OP_ISSUER = "https://sso.elsewhere.example"
    idp.sign_in_as("gina", groups=("connvo-support",))

    response = sign_in_with_idp(client)

    assert "Signing in with Example SSO did not work" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(username="gina").exists()


def test_signing_out_ends_the_session_at_the_provider_too(client: Client, idp, settings):
    settings.OIDC_OP_LOGOUT_ENDPOINT = f"{idp.url}/logout"
    idp.sign_in_as("hana", groups=("connvo-support",))
    sign_in_with_idp(client)

    response = client.post("/accounts/logout/")

    assert "_auth_user_id" not in client.session
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{idp.url}/logout"
    query = parse_qs(location.query)
    assert query["client_id"] == [idp.client_id]
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    ended = requests.get(response["Location"], allow_redirects=False, timeout=5)
    assert ended.status_code == 302
    assert ended.headers["Location"] == "http://testserver/accounts/login/"


def test_a_password_sign_out_stays_in_the_console(client: Client, idp, settings, agent):
    settings.OIDC_OP_LOGOUT_ENDPOINT = f"{idp.url}/logout"
    client.force_login(agent)

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"


def test_someone_in_neither_group_is_refused_with_a_reason(client: Client, idp):
    idp.sign_in_as("frank", groups=("marketing",))

    response = sign_in_with_idp(client)

    page = response.content.decode()
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "not in a group that may use this console" in page
    assert not User.objects.filter(username="frank").exists()


def test_a_console_superuser_cannot_sign_in_through_the_provider(client: Client, idp, admin_user):
    idp.sign_in_as("admin", groups=("connvo-support",))

    response = sign_in_with_idp(client)

    assert "Administrators sign in with their console password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_identity_token_for_another_application_is_refused(client: Client, idp):
    idp.sign_in_as("gina", groups=("connvo-support",))
    idp.audience = "some-other-application"

    response = sign_in_with_idp(client)

    assert "Signing in with Example SSO did not work" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_unreachable_provider_is_a_message_not_an_error_page(client: Client, idp, settings):
    idp.sign_in_as("hal", groups=("connvo-support",))
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"

    response = sign_in_with_idp(client)

    assert response.status_code == 200
    assert "Signing in with Example SSO did not work" in response.content.decode()


def test_a_refusal_at_the_provider_returns_to_the_sign_in_page(client: Client, idp):
    idp.deny = True

    response = sign_in_with_idp(client)

    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_the_console_sends_a_pkce_challenge_and_proves_it(client: Client, idp):
    start = client.get("/accounts/oidc/start/")

    query = parse_qs(urlsplit(start["Location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    idp.sign_in_as("ivy", groups=("connvo-support",))
    approved = requests.get(start["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(approved.headers["Location"])
    client.get(f"{back.path}?{back.query}")
    # The provider checked the verifier against the challenge before it issued the tokens.
    assert client.session["_auth_user_id"] == str(User.objects.get(username="ivy").pk)


def test_the_fake_provider_refuses_a_code_flow_without_pkce(idp):
    """The fake behaves like a provider whose client requires PKCE, so a console that stopped
    sending it could not sign anyone in."""
    response = requests.get(
        f"{idp.url}/authorize",
        params={
            "client_id": idp.client_id,
            "redirect_uri": "http://testserver/oidc/callback/",
            "response_type": "code",
            "scope": "openid",
            "state": "s",
        },
        allow_redirects=False,
        timeout=5,
    )

    back = parse_qs(urlsplit(response.headers["Location"]).query)
    assert back["error"] == ["invalid_request"]
    assert "code" not in back


def test_without_pkce_nobody_can_sign_in(client: Client, idp, settings):
    settings.OIDC_USE_PKCE = False
    idp.sign_in_as("jo", groups=("connvo-support",))

    response = sign_in_with_idp(client)

    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_password_sign_in_still_works_alongside(client: Client, idp, agent):
    response = client.post("/accounts/login/", {"username": "agent", "password": PASSWORD})

    assert response.status_code == 302
    assert idp.calls == []


def test_without_configuration_there_is_no_provider_sign_in(client: Client):
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    assert client.get("/accounts/oidc/start/").status_code == 404
    assert client.get("/accounts/oidc/callback/?code=x&state=y").status_code == 404


def test_the_identity_providers_groups_at_sign_in_are_recorded_as_the_accounts_own(client, idp):
    idp.sign_in_as("erin", groups=("connvo-support",))
    sign_in_with_idp(client)
    client.logout()
    idp.sign_in_as("erin", groups=("connvo-support",))
    sign_in_with_idp(client)  # nothing changed: nothing recorded
    client.logout()
    idp.sign_in_as("erin", groups=("connvo-audit",))

    sign_in_with_idp(client)

    assert groups_of("erin") == {"Auditor"}
    (created, moved) = (
        AuditEntry.objects.filter(action=Action.ACCESS_CHANGED)
        .order_by("pk")
        .values_list("actor_username", "detail")
    )
    assert created == (
        "erin",
        "erin: account created; added to Support; linked to the identity "
        f"provider's {ProviderIdentity.objects.get().subject} at "
        f"{ProviderIdentity.objects.get().issuer} (by Example SSO's groups at "
        "sign-in)",
    )
    assert moved == (
        "erin",
        "erin: added to Auditor; removed from Support (by Example SSO's groups at sign-in)",
    )


def test_deactivating_an_account_signed_in_through_the_provider_ends_its_sign_in(
    client: Client, idp
):
    """mozilla-django-oidc's backend read the session's user whether or not it was active: an
    account signed in with the provider stayed signed in once deactivated (a 403 on the next
    page, and a pushed page kept being sent the meeting)."""
    from accounts import sessions

    idp.sign_in_as("dana", groups=("connvo-support",), email="dana@example.com")
    assert sign_in_with_idp(client, next_path="/tokens/").status_code == 200
    User.objects.filter(username="dana").update(is_active=False)
    dana = User.objects.get(username="dana")

    assert not sessions.still_signed_in(client.session, dana.pk, now=time.time())
    page = client.get("/tokens/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")


def test_a_deactivated_account_signing_in_through_the_provider_is_told_and_recorded(
    client: Client, idp
):
    """It was sent back to the sign-in page without a word, and the audit log had nothing."""
    idp.sign_in_as("dana", groups=("connvo-support",), email="dana@example.com")
    assert sign_in_with_idp(client).status_code == 200
    client.post("/accounts/logout/")
    User.objects.filter(username="dana").update(is_active=False)

    refused = sign_in_with_idp(client)

    assert refused.redirect_chain[-1][0] == "/accounts/login/"
    assert "Your console account is deactivated" in refused.content.decode()
    assert AuditEntry.objects.filter(action=Action.SIGN_IN_FAILED).exists()
    assert "_auth_user_id" not in client.session


def test_a_sign_in_link_used_twice_says_what_to_do(client: Client, idp):
    """A replayed (or stale) callback is refused with 400: Django's bare "Bad Request (400)"
    page, with no way back; now a page saying what happened and where to go."""
    idp.sign_in_as("dana", groups=("connvo-support",))
    start = client.get("/accounts/oidc/start/", {"next": "/"})
    approved = requests.get(start["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(approved.headers["Location"])
    client.get(f"{back.path}?{back.query}")
    client.post("/accounts/logout/")
    client.get("/accounts/oidc/start/", {"next": "/"})  # another sign-in started, not finished

    again = client.get(f"{back.path}?{back.query}")

    assert again.status_code == 400
    page = again.content.decode()
    assert "The console could not use this request" in page
    assert 'href="/accounts/login/"' in page


def test_turning_the_provider_off_ends_the_sign_ins_made_through_it(
    client: Client, idp, settings, agent
):
    idp.sign_in_as("dana", groups=("connvo-support",))
    assert sign_in_with_idp(client, next_path="/tokens/").status_code == 200
    password = Client()
    password.post("/accounts/login/", {"username": "agent", "password": PASSWORD})

    settings.OIDC_ENABLED = False

    page = client.get("/tokens/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
    assert password.get("/tokens/").status_code == 200  # a password's sign-in is not its
