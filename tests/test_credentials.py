"""Connvo sessions through WorkOS: connecting an account, renewing short-lived access tokens with
single-use refresh tokens (also under concurrency), and every way that can fail."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import Action, AuditEntry, ChainHead, Via
from audit.services import Origin, record
from fakeconnvo import REVOKE_SESSION_PATH
from meetings import credentials, workos_auth
from meetings.lookups import Wanted
from meetings.lookups import look_up as look_up_many
from meetings.models import StaffToken

pytestmark = pytest.mark.usefixtures("workos")


def connect(client: Client, fake) -> requests.Response:
    """Press Connect, let the fake AuthKit approve, and follow its redirect back."""
    started = client.post(reverse("meetings:connect_start", args=["dev"]))
    assert started.status_code == 302
    approved = requests.get(started["Location"], allow_redirects=False, timeout=5)
    assert approved.status_code == 302, approved.text
    back = urlsplit(approved.headers["Location"])
    return client.get(back.path, parse_qs(back.query))


def look_up(user, fake, label="standup", via=Via.PAGE):
    """One meeting's first look through the lookup pipeline: its lookup, or raise its failure."""
    (answer,) = look_up_many(
        user=user,
        origin=Origin.for_command(user),
        wanted=[Wanted("dev", fake.meeting_id(label))],
        via=via,
    )
    if answer.error is not None:
        raise answer.error
    return answer.lookup


def expire_soon(user, seconds=30):
    StaffToken.objects.filter(user=user).update(
        expires_at=timezone.now() + timedelta(seconds=seconds)
    )


def stored_refresh_token(user) -> str:
    stored = StaffToken.objects.get(user=user, deployment="dev")
    return credentials.cipher().decrypt(bytes(stored.refresh_ciphertext)).decode()


# --- Connecting -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_connect_flow_stores_the_session_and_shows_who(agent_client, agent, fake_connvo):
    response = connect(agent_client, fake_connvo)

    assert response.status_code == 302
    page = agent_client.get(reverse("meetings:tokens")).content.decode()
    email = fake_connvo.users["agent"].email
    assert f"as <strong><bdi>{email}</bdi></strong>" in page
    assert "Disconnect" in page
    stored = StaffToken.objects.get(user=agent, deployment="dev")
    assert stored.is_connected_session
    assert stored.subject == fake_connvo.users["agent"].sub
    assert AuditEntry.objects.filter(action=Action.CONNVO_CONNECTED).count() == 1
    assert look_up(agent, fake_connvo).meeting.title


@pytest.mark.django_db
def test_callback_with_a_wrong_state_connects_nothing(agent_client, agent, fake_connvo):
    agent_client.post(reverse("meetings:connect_start", args=["dev"]))

    response = agent_client.get(
        reverse("meetings:connect_callback"), {"code": "stolen", "state": "forged"}
    )

    assert response.status_code == 400
    assert "does not belong to a connection you started here" in response.content.decode()
    assert not StaffToken.objects.exists()
    failed = AuditEntry.objects.get(action=Action.CONNVO_CONNECT_FAILED)
    assert "state" in failed.detail


@pytest.mark.django_db
def test_state_cannot_be_replayed(agent_client, fake_connvo):
    started = agent_client.post(reverse("meetings:connect_start", args=["dev"]))
    approved = requests.get(started["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(approved.headers["Location"])
    agent_client.get(back.path, parse_qs(back.query))

    again = agent_client.get(back.path, parse_qs(back.query))

    assert again.status_code == 400


@pytest.mark.django_db
def test_disconnect_revokes_the_session_at_workos(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)
    refresh_token = stored_refresh_token(agent)

    agent_client.post(reverse("meetings:connect_disconnect", args=["dev"]))

    assert not StaffToken.objects.exists()
    assert AuditEntry.objects.filter(action=Action.CONNVO_DISCONNECTED).count() == 1
    # The session really ended: its refresh token no longer works at WorkOS.
    client = workos_auth.workos_client("dev")
    with pytest.raises(Exception, match=r"(?i)invalid_grant|ended|revoked"):
        client.user_management.authenticate_with_refresh_token(refresh_token=refresh_token)


def _session_still_renews(refresh_token: str) -> bool:
    try:
        workos_auth.workos_client("dev").user_management.authenticate_with_refresh_token(
            refresh_token=refresh_token
        )
    except Exception:  # the fake WorkOS's refusal, whatever its class
        return False
    return True


@pytest.mark.parametrize("where", ["command line", "admin", "admin list"])
def test_every_way_a_connected_account_is_removed_ends_the_session_and_is_recorded(
    where, agent_client, agent, admin_client, fake_connvo
):
    """`connvo_token remove` recorded "token removed" and left the session alive at WorkOS; the
    admin's delete (one, or "delete selected") recorded nothing and left it alive too."""
    connect(agent_client, fake_connvo)
    refresh_token = stored_refresh_token(agent)
    stored = StaffToken.objects.get(user=agent)

    if where == "command line":
        call_command(
            "connvo_token", "remove", "--user", "agent", "--deployment", "dev", stdout=io.StringIO()
        )
    elif where == "admin":
        admin_client.post(
            reverse("admin:meetings_stafftoken_delete", args=[stored.pk]), {"post": "yes"}
        )
    else:
        admin_client.post(
            reverse("admin:meetings_stafftoken_changelist"),
            {"action": "delete_selected", "_selected_action": [stored.pk], "post": "yes"},
        )

    assert not StaffToken.objects.exists()
    assert not _session_still_renews(refresh_token)
    (entry,) = AuditEntry.objects.filter(action=Action.CONNVO_DISCONNECTED)
    assert entry.deployment == "dev"
    if where != "command line":
        assert entry.actor_username == "admin"
        assert entry.detail == "agent's credential, removed in the admin"


@pytest.mark.parametrize("where", ["admin", "admin list", "elsewhere"])
@pytest.mark.django_db
def test_deleting_an_account_ends_its_connvo_session_and_records_it(
    where, agent_client, agent, admin_client, fake_connvo
):
    """An account's deletion cascaded to its credentials: the session stayed alive at WorkOS
    and no entry said that the credential went."""
    connect(agent_client, fake_connvo)
    refresh_token = stored_refresh_token(agent)
    history = AuditEntry.objects.filter(actor=agent).count()

    if where == "admin":
        response = admin_client.post(
            reverse("admin:auth_user_delete", args=[agent.pk]), {"post": "yes"}
        )
        assert response.status_code == 302
    elif where == "admin list":
        response = admin_client.post(
            reverse("admin:auth_user_changelist"),
            {"action": "delete_selected", "_selected_action": [agent.pk], "post": "yes"},
        )
        assert response.status_code == 302
    else:
        agent.delete()

    assert not type(agent).objects.filter(username="agent").exists()
    assert not StaffToken.objects.exists()
    assert not _session_still_renews(refresh_token)
    (entry,) = AuditEntry.objects.filter(action=Action.CONNVO_DISCONNECTED)
    assert entry.deployment == "dev"
    assert entry.detail.startswith("agent's credential, forgotten as the account was deleted")
    assert entry.actor_username == ("" if where == "elsewhere" else "admin")
    # The account's history stays, its actor's name kept (the link to the account is gone).
    assert AuditEntry.objects.filter(actor_username="agent").count() >= history > 0
    assert call_command("audit_verify", stdout=io.StringIO()) is None


@pytest.mark.django_db(transaction=True)
def test_deleting_an_account_never_waits_for_workos_holding_the_audit_chain(
    agent, admin_user, fake_connvo, settings
):
    """Each credential of a deleted account was forgotten in turn within the admin's one
    transaction: the second session's revocation at WorkOS waited (up to its timeout) holding
    the chain's lock, which every lookup's audit entry waits on. Sessions are ended first."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks across connections need PostgreSQL")
    settings.CONNVO_DEPLOYMENTS = {**settings.CONNVO_DEPLOYMENTS, "staging": fake_connvo.url}
    settings.CONNVO_WORKOS = {**settings.CONNVO_WORKOS, "staging": settings.CONNVO_WORKOS["dev"]}
    workos_auth._client.cache_clear()
    agent_client = Client()
    agent_client.force_login(agent)
    for name in ("dev", "staging"):
        started = agent_client.post(reverse("meetings:connect_start", args=[name]))
        approved = requests.get(started["Location"], allow_redirects=False, timeout=5)
        back = urlsplit(approved.headers["Location"])
        agent_client.get(back.path, parse_qs(back.query))
    assert StaffToken.objects.filter(user=agent).count() == 2
    fake_connvo.misbehave("workos_slow", delay=1.5)
    admin = Client()
    admin.force_login(admin_user)
    deleted: list[int] = []

    def delete_the_account() -> None:
        try:
            response = admin.post(
                reverse("admin:auth_user_delete", args=[agent.pk]), {"post": "yes"}
            )
            deleted.append(response.status_code)
        finally:
            connections.close_all()

    thread = threading.Thread(target=delete_the_account)
    thread.start()
    try:
        while len(revocations(fake_connvo)) < 2:
            thread.join(timeout=0.05)  # until the second session's revocation is at WorkOS
        with transaction.atomic():
            # Raises LockNotAvailable if the deletion holds the chain's head.
            ChainHead.objects.select_for_update(nowait=True).first()
    finally:
        thread.join(timeout=30)
    assert deleted == [302]
    assert AuditEntry.objects.filter(action=Action.CONNVO_DISCONNECTED).count() == 2


def revocations(fake) -> list:
    return [call for call in fake.workos_calls if call.path == REVOKE_SESSION_PATH]


@pytest.mark.django_db
def test_after_disconnect_a_lookup_and_an_open_page_ask_to_connect_not_to_paste(
    agent_client, fake_connvo
):
    connect(agent_client, fake_connvo)
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    agent_client.post(reverse("meetings:connect_disconnect", args=["dev"]))

    page = agent_client.get(url).content.decode()
    refresh = agent_client.get(url, HTTP_HX_REQUEST="true").content.decode()

    # This deployment takes no pasted token: the way back is the Connect button.
    assert ">Connect your Connvo account for dev</a>" in page
    assert "<li>Connect your Connvo account for dev on the Tokens page" in page
    assert ">Connect your Connvo account for dev</a>, then" in refresh
    assert "Add your token" not in page + refresh
    # Headed by what is missing here: an account to connect, not a token to paste.
    assert '<h1 id="problem-title">Connvo account not connected</h1>' in page
    assert "Live updates stopped: Connvo account not connected." in refresh
    assert "token needed" not in page + refresh


def approved_callback(client: Client, fake) -> tuple[str, dict]:
    """Press Connect and let the fake AuthKit approve; the browser has not come back yet."""
    started = client.post(reverse("meetings:connect_start", args=["dev"]))
    approved = requests.get(started["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(approved.headers["Location"])
    return back.path, parse_qs(back.query)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "misbehaviour", [("workos_down", {}), ("workos_error", {"status": 503})], ids=["down", "503"]
)
def test_workos_failing_during_the_code_exchange_connects_nothing_and_says_so(
    agent_client, agent, fake_connvo, misbehaviour
):
    path, query = approved_callback(agent_client, fake_connvo)
    kind, options = misbehaviour
    fake_connvo.misbehave(kind, **options)

    response = agent_client.get(path, query, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("meetings:tokens")
    page = response.content.decode()
    assert "could not reach WorkOS to finish connecting your account" in page
    assert "Traceback" not in page
    assert not StaffToken.objects.exists()
    failed = AuditEntry.objects.get(action=Action.CONNVO_CONNECT_FAILED)
    assert failed.deployment == "dev"
    assert not AuditEntry.objects.filter(action=Action.CONNVO_CONNECTED).exists()


@pytest.mark.django_db
def test_a_code_exchange_answered_by_a_proxy_page_connects_nothing_and_says_so(
    agent_client, agent, fake_connvo, caplog
):
    """A 200 with an HTML page (a proxy's or captive portal's) where WorkOS's JSON belongs: the
    same guard as a renewal's, not an error page."""
    caplog.set_level(logging.DEBUG)
    path, query = approved_callback(agent_client, fake_connvo)
    fake_connvo.misbehave("workos_garbage", times=1)

    response = agent_client.get(path, query, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("meetings:tokens")
    page = response.content.decode()
    assert "could not reach WorkOS to finish connecting your account" in page
    assert not StaffToken.objects.exists()
    failed = AuditEntry.objects.get(action=Action.CONNVO_CONNECT_FAILED)
    assert "not JSON" in failed.detail
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    audited = repr(list(AuditEntry.objects.values()))
    for secret in query["code"]:
        assert secret not in logged
        assert secret not in audited


@pytest.mark.django_db
def test_workos_failing_during_disconnect_still_forgets_the_tokens_here(
    agent_client, agent, fake_connvo
):
    connect(agent_client, fake_connvo)
    (session,) = fake_connvo.sessions.values()
    fake_connvo.misbehave("workos_down")

    response = agent_client.post(reverse("meetings:connect_disconnect", args=["dev"]), follow=True)

    assert response.status_code == 200
    assert "Your Connvo account for dev is disconnected." in response.content.decode()
    assert not StaffToken.objects.exists()
    entry = AuditEntry.objects.get(action=Action.CONNVO_DISCONNECTED)
    assert entry.detail.startswith("revoking at WorkOS failed")
    # Honest about what happened: the session was not ended at WorkOS and simply expires there.
    assert fake_connvo.sessions[session.id].active


@pytest.mark.django_db
def test_deployment_without_workos_keeps_the_paste_form(agent_client, settings, fake_connvo):
    settings.CONNVO_WORKOS = {}

    page = agent_client.get(reverse("meetings:tokens")).content.decode()

    assert "Connect your Connvo account" not in page
    assert "Paste your token" in page


# --- Pasting where accounts are connected ---------------------------------------------------------


def paste(client: Client, token: str):
    return client.post(
        reverse("meetings:token_save", args=["dev"]),
        {"dev-deployment": "dev", "dev-token": token},
        follow=True,
    )


@pytest.mark.django_db
def test_a_paste_where_accounts_are_connected_is_refused_and_the_session_kept(
    agent_client, agent, fake_connvo
):
    """A Tokens page loaded before WorkOS was set up (or a hand-made request) still posts a paste:
    it must not land beside the connected session, half one and half the other."""
    connect(agent_client, fake_connvo)
    before = StaffToken.objects.get(user=agent)
    refresh_token = stored_refresh_token(agent)

    response = paste(agent_client, fake_connvo.token_for("agent", expires_in=30))

    assert response.redirect_chain[-1][0] == reverse("meetings:tokens")
    page = response.content.decode()
    assert "Connvo tokens for dev are not pasted" in page
    assert f"as <strong><bdi>{before.email}</bdi></strong>" in page  # still connected
    after = StaffToken.objects.get(user=agent)
    assert bytes(after.ciphertext) == bytes(before.ciphertext)
    assert stored_refresh_token(agent) == refresh_token
    assert (after.email, after.session_id) == (before.email, before.session_id)
    assert not AuditEntry.objects.filter(
        action__in=[Action.TOKEN_SAVED, Action.TOKEN_REPLACED]
    ).exists()


@pytest.mark.django_db
def test_connvo_token_set_refuses_a_deployment_where_accounts_are_connected(
    agent_client, agent, fake_connvo, monkeypatch
):
    connect(agent_client, fake_connvo)
    refresh_token = stored_refresh_token(agent)
    stdin = io.StringIO(fake_connvo.token_for("agent") + "\n")
    monkeypatch.setattr("sys.stdin", stdin)

    with pytest.raises(CommandError, match="Connvo tokens for dev are not pasted"):
        call_command(
            "connvo_token", "set", "--user", "agent", "--deployment", "dev", stdout=io.StringIO()
        )

    assert stdin.tell() == 0  # not asked for a token it would not take
    assert stored_refresh_token(agent) == refresh_token
    assert StaffToken.objects.get(user=agent).email


@pytest.mark.django_db
def test_a_token_pasted_over_an_ended_session_is_a_pasted_token_only(
    agent_client, agent, fake_connvo, settings
):
    """Where WorkOS was set up and then removed, an agent's old session (here: ended) is replaced
    by the token they paste, whole: it is used as it is, never \"renewed\"."""
    connect(agent_client, fake_connvo)
    fake_connvo.revoke_user_sessions("agent")
    expire_soon(agent)
    with pytest.raises(credentials.SessionEnded):
        look_up(agent, fake_connvo)
    settings.CONNVO_WORKOS = {}
    pasted = fake_connvo.token_for("agent", expires_in=30)  # within the renewal margin

    paste(agent_client, pasted)

    stored = StaffToken.objects.get(user=agent)
    assert not stored.is_connected_session
    assert (stored.session_id, stored.email, stored.session_ended_at) == ("", "", None)
    assert look_up(agent, fake_connvo).meeting.title
    assert credentials.reveal(stored) == pasted
    page = agent_client.get(reverse("meetings:tokens")).content.decode()
    assert f"…{pasted[-4:]}" in page
    assert "session ended" not in page


# --- Renewing -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_fresh_access_token_is_used_as_it_is(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)

    look_up(agent, fake_connvo)

    assert fake_connvo.refresh_count == 0


@pytest.mark.django_db
def test_token_about_to_expire_is_renewed_and_the_new_refresh_token_stored(
    agent_client, agent, fake_connvo
):
    connect(agent_client, fake_connvo)
    first_refresh_token = stored_refresh_token(agent)
    connected_at = StaffToken.objects.get(user=agent).created_at
    expire_soon(agent)

    result = look_up(agent, fake_connvo)

    assert result.meeting.title
    assert fake_connvo.refresh_count == 1
    assert stored_refresh_token(agent) != first_refresh_token
    stored = StaffToken.objects.get(user=agent)
    assert stored.expires_at > timezone.now() + timedelta(minutes=4)
    assert stored.created_at == connected_at  # a renewal is of the same connection
    refreshed = AuditEntry.objects.get(action=Action.TOKEN_REFRESHED)
    assert refreshed.actor == agent


@pytest.mark.django_db
def test_expired_access_token_is_renewed_silently(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)
    StaffToken.objects.filter(user=agent).update(expires_at=timezone.now() - timedelta(hours=1))

    response = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")]),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert 'data-status="live"' in response.content.decode()
    assert fake_connvo.refresh_count == 1


@pytest.mark.django_db
def test_revoked_session_asks_the_agent_to_reconnect(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)
    fake_connvo.revoke_user_sessions("agent")
    expire_soon(agent)

    page = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )

    assert page.status_code == 403
    assert "Reconnect your Connvo account" in page.content.decode()
    ended = StaffToken.objects.get(user=agent)  # remembered as ended, not forgotten
    assert ended.session_ended_at is not None
    assert "invalid_grant" in ended.session_end_reason
    assert not bytes(ended.ciphertext) and not bytes(ended.refresh_ciphertext)
    assert AuditEntry.objects.filter(action=Action.TOKEN_REFRESH_FAILED).count() == 1
    assert AuditEntry.objects.get(action=Action.LOOKUP).outcome == "session_ended"


@pytest.mark.django_db
def test_an_ended_session_says_so_everywhere_until_the_agent_reconnects(
    agent_client, agent, fake_connvo
):
    connect(agent_client, fake_connvo)
    fake_connvo.revoke_user_sessions("agent")
    expire_soon(agent)
    url = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    agent_client.get(url)  # the first request learns that the session ended
    refresh_calls = fake_connvo.refresh_count

    # Every later request (other tabs, refreshes, the command line) says the same thing...
    again = agent_client.get(url)
    refresh = agent_client.get(url, HTTP_HX_REQUEST="true")
    tokens_page = agent_client.get(reverse("meetings:tokens")).content.decode()
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "connvo_lookup",
            fake_connvo.meeting_id("standup"),
            "--user",
            "agent",
            "--deployment",
            "dev",
            "--json",
            stdout=out,
        )

    assert again.status_code == 403
    assert "Reconnect your Connvo account" in again.content.decode()
    assert "Update your token" not in again.content.decode()
    assert "Reconnect your Connvo account" in refresh.content.decode()
    assert "Your Connvo session ended" in tokens_page
    assert "Reconnect your Connvo account" in tokens_page
    assert json.loads(out.getvalue())["error"] == "session_ended"
    assert fake_connvo.refresh_count == refresh_calls  # WorkOS is not asked again
    assert [e.outcome for e in AuditEntry.objects.filter(action=Action.LOOKUP)] == [
        "session_ended"
    ] * 4  # the first request, the page again, its refresh, the command

    # ...until the agent reconnects: a new connection, which the Tokens page dates from now (it
    # kept the first connection's date, 40 days back here).
    StaffToken.objects.filter(user=agent).update(created_at=timezone.now() - timedelta(days=40))
    connect(agent_client, fake_connvo)
    assert agent_client.get(url).status_code == 200
    reconnected = StaffToken.objects.get(user=agent)
    assert reconnected.session_ended_at is None
    assert timezone.now() - reconnected.created_at < timedelta(minutes=1)
    card = agent_client.get(reverse("meetings:tokens")).content.decode()
    assert f"<dt>Connected</dt><dd>{timezone.localtime():%a %-d %b %Y}" in card


@pytest.mark.django_db
def test_revoked_session_while_polling_shows_the_reconnect_banner(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)
    fake_connvo.revoke_user_sessions("agent")
    expire_soon(agent)

    response = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")]),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 286
    assert "Reconnect your Connvo account" in response.content.decode()


@pytest.mark.django_db
def test_workos_down_gives_a_clear_error_and_keeps_the_session(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)
    expire_soon(agent)
    fake_connvo.misbehave("workos_down")

    page = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )

    assert page.status_code == 502
    assert "could not reach WorkOS" in page.content.decode()
    assert StaffToken.objects.get(user=agent).is_connected_session
    assert AuditEntry.objects.get(action=Action.LOOKUP).outcome == "auth_unavailable"


@pytest.mark.django_db
def test_a_workos_answer_that_is_not_json_is_like_workos_down(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)
    expire_soon(agent)
    refresh_token = stored_refresh_token(agent)
    fake_connvo.misbehave("workos_garbage", times=1)

    page = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )

    assert page.status_code == 502
    assert "could not reach WorkOS" in page.content.decode()
    # The session is kept, refresh token unspent, and the next lookup renews it.
    assert stored_refresh_token(agent) == refresh_token
    failed = AuditEntry.objects.get(action=Action.TOKEN_REFRESH_FAILED)
    assert "not JSON" in failed.detail
    again = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )
    assert again.status_code == 200


@pytest.mark.django_db
def test_a_database_error_while_preparing_the_credential_shows_nothing(
    agent_client, agent, fake_connvo, caplog
):
    """The renewal cannot be recorded (here: the audit table is gone), so the renewed session is
    not stored either, and the lookup stops before Connvo with a message, not an error page."""
    connect(agent_client, fake_connvo)
    expire_soon(agent)
    stored_before = StaffToken.objects.get(user=agent)
    fake_connvo.clear_calls()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry RENAME TO audit_auditentry_away")

    response = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )

    assert response.status_code == 503
    page = response.content.decode()
    assert "could not record this lookup" in page
    assert fake_connvo.meetings[fake_connvo.meeting_id("standup")].fields["title"] not in page
    assert not [call for call in fake_connvo.calls if "getMeeting" in call.path]
    assert StaffToken.objects.get(user=agent).ciphertext == stored_before.ciphertext
    assert "credential for a lookup by agent could not be prepared" in caplog.text


@pytest.mark.django_db
def test_workos_down_while_polling_backs_off(agent_client, agent, fake_connvo):
    connect(agent_client, fake_connvo)
    expire_soon(agent)
    fake_connvo.misbehave("workos_down")

    response = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")]),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert 'data-status="failing"' in response.content.decode()


@pytest.mark.django_db
def test_no_token_in_any_log_line_across_connect_and_refresh(
    agent_client, agent, fake_connvo, caplog
):
    caplog.set_level(logging.DEBUG)
    connect(agent_client, fake_connvo)
    access_token = credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev"))
    refresh_token = stored_refresh_token(agent)
    expire_soon(agent)
    look_up(agent, fake_connvo)
    new_refresh_token = stored_refresh_token(agent)

    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert logged
    for secret in (access_token, refresh_token, new_refresh_token):
        assert secret not in logged
        assert secret[-16:] not in logged
    audited = repr(list(AuditEntry.objects.values()))
    for secret in (access_token, refresh_token, new_refresh_token):
        assert secret[-16:] not in audited


# --- Concurrency ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_lookups_spend_the_refresh_token_once(agent, fake_connvo):
    if connection.vendor != "postgresql":
        pytest.skip("row locks across connections need PostgreSQL")
    client = Client()
    client.force_login(agent)
    connect(client, fake_connvo)
    expire_soon(agent, seconds=5)
    results: list[object] = []
    start = threading.Barrier(8)

    def lookup() -> None:
        try:
            start.wait()
            results.append(look_up(agent, fake_connvo))
        except Exception as exc:  # collected and asserted below
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [type(r).__name__ for r in results] == ["Lookup"] * 8
    assert fake_connvo.refresh_count == 1
    assert AuditEntry.objects.filter(action=Action.TOKEN_REFRESHED).count() == 1


def slow_renewal(fake_connvo) -> list:
    """WorkOS's calls that renew a session and that the fake is holding back (`workos_slow`)."""
    return [
        call
        for call in fake_connvo.workos_calls
        if call.path.endswith("/authenticate") and call.misbehaviour == "workos_slow"
    ]


@contextlib.contextmanager
def renewal_waiting_for_workos(agent, fake_connvo) -> Iterator[list[object]]:
    """The agent's lookup in another thread, its renewal held back by the fake's `workos_slow`:
    the body runs while WorkOS has not answered; then the lookup ends. Yields the lookup's
    result (or what it raised), there once the body is done."""
    renewal: list[object] = []

    def look_up_slowly() -> None:
        try:
            renewal.append(look_up(agent, fake_connvo))
        except Exception as exc:  # asserted by the test
            renewal.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=look_up_slowly)
    thread.start()
    while not slow_renewal(fake_connvo):
        thread.join(timeout=0.05)  # until the renewal is waiting for WorkOS
    try:
        yield renewal
    finally:
        thread.join(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_no_database_write_waits_for_a_slow_workos(agent, fake_connvo, settings):
    """While one agent's renewal waits for WorkOS, every other write goes through (on SQLite a
    transaction held across the call would hold the database-wide write lock, and the write below
    would wait, up to the busy timeout, until WorkOS had answered)."""
    settings.WORKOS_TIMEOUT = 20
    client = Client()
    client.force_login(agent)
    connect(client, fake_connvo)
    expire_soon(agent)
    # Longer than any write takes here; what is asserted is the order, not the time.
    fake_connvo.misbehave("workos_slow", delay=3, times=1)

    with renewal_waiting_for_workos(agent, fake_connvo) as renewal:
        # Another agent's audit entry, written while WorkOS has not answered.
        entry = record(origin=Origin(user=None, username="other"), action=Action.SIGN_IN)
        (waiting,) = slow_renewal(fake_connvo)
        written_before_workos_answered = waiting.status is None

    assert entry.pk
    assert written_before_workos_answered
    assert [type(r).__name__ for r in renewal] == ["Lookup"]
    assert slow_renewal(fake_connvo)[0].status == 200
    assert fake_connvo.refresh_count == 1


@pytest.mark.django_db(transaction=True)
def test_reconnecting_while_a_renewal_waits_for_workos_keeps_the_new_session_whole(
    agent, fake_connvo
):
    """The renewal of the old session answers after the agent reconnected (here as another Connvo
    user): it must not settle on the new session, which would keep the new account's email beside
    the old account's tokens."""
    client = Client()
    client.force_login(agent)
    connect(client, fake_connvo)
    expire_soon(agent)
    fake_connvo.misbehave("workos_slow", delay=2, times=1)

    with renewal_waiting_for_workos(agent, fake_connvo) as renewal:
        alice = fake_connvo.workos_login_as("alice")
        connect(client, fake_connvo)
        reconnected = stored_refresh_token(agent)

    assert [type(r).__name__ for r in renewal] == ["Lookup"]
    stored = StaffToken.objects.get(user=agent)
    assert (stored.subject, stored.email) == (alice.sub, alice.email)
    assert stored_refresh_token(agent) == reconnected
    assert credentials.read_claims(credentials.reveal(stored)).subject == alice.sub


@pytest.mark.django_db
def test_session_whose_key_was_removed_asks_to_save_again(
    agent_client, agent, fake_connvo, settings
):
    from cryptography.fernet import Fernet

    connect(agent_client, fake_connvo)
    expire_soon(agent)
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    page = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )

    assert page.status_code == 403
    assert "can no longer be read" in page.content.decode()
    assert fake_connvo.refresh_count == 0


def test_the_lookups_read_of_a_credential_is_the_users_own_for_that_deployment_only(agent, auditor):
    # StaffToken.objects.of() is plain SQL on every lookup: it must pick by user and deployment.
    mine = StaffToken.objects.create(user=agent, deployment="dev", ciphertext=b"a", last4="aaaa")
    StaffToken.objects.create(user=agent, deployment="prod", ciphertext=b"b", last4="bbbb")
    StaffToken.objects.create(user=auditor, deployment="staging", ciphertext=b"c", last4="cccc")

    found = StaffToken.objects.of(agent, "dev")

    assert (found.pk, found.deployment, found.last4, found.user_id) == (
        mine.pk,
        "dev",
        "aaaa",
        agent.pk,
    )
    assert bytes(found.ciphertext) == b"a"
    assert StaffToken.objects.of(agent, "staging") is None
    assert StaffToken.objects.of(auditor, "dev") is None
    assert StaffToken.objects.of(agent, "dev' OR '1'='1") is None


@pytest.mark.django_db
def test_a_connection_the_keys_no_longer_read_asks_to_connect_again(
    agent, agent_client, fake_connvo, settings
):
    """A connected account stored under an encryption key since removed: the way back is the
    Connect button, as for an account never connected, not a token to save."""
    from cryptography.fernet import Fernet

    connect(agent_client, fake_connvo)
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(credentials.NoToken) as caught:
        look_up(agent, fake_connvo)

    assert caught.value.title == "Connvo account not connected"
    assert "Connect your account again on the Tokens page" in caught.value.message
    assert "your token" not in caught.value.message
    assert fake_connvo.call_count == 0
