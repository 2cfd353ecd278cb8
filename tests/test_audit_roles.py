"""Who may open what: every page of the console for anonymous visitors, staff with no group,
support agents, auditors and administrators. A refusal is a 403 page and an audit entry."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from audit.models import Action, AuditEntry

pytestmark = pytest.mark.django_db

MEETING = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
# (method, URL, data). The lookup answers "no token" for a user without one; that is the page
# working, not a refusal.
URLS = {
    "lookup": ("get", "/", None),
    "meeting": ("get", f"/meetings/dev/{MEETING}/", None),
    "tokens": ("get", "/tokens/", None),
    "token save": ("post", "/tokens/dev/save/", {"dev-deployment": "dev", "dev-token": "x"}),
    "token remove": ("post", "/tokens/dev/remove/", {"deployment": "dev"}),
    "audit log": ("get", "/audit/", None),
    "audit meeting": ("get", f"/audit/meetings/{MEETING}/", None),
    "audit staff": ("get", "/audit/staff/agent/", None),
    "audit entry": ("get", "/audit/entries/{entry}/", None),
    "export csv": ("get", "/audit/export.csv", None),
    "export jsonl": ("get", "/audit/export.jsonl", None),
    "admin": ("get", "/admin/", None),
    "admin audit log": ("get", "/admin/audit/auditentry/", None),
    "admin audit entry": ("get", "/admin/audit/auditentry/{entry}/change/", None),
}
MEETINGS = {"lookup", "meeting", "tokens", "token save", "token remove"}
AUDIT = {"audit log", "audit meeting", "audit staff", "audit entry", "export csv", "export jsonl"}
ADMIN = {"admin", "admin audit log", "admin audit entry"}

# What each role gets: "allowed", "refused" (403 + audit entry), or "sign in" (sent to a login).
EXPECTED = {
    "anonymous": dict.fromkeys(URLS, "sign in"),
    "outsider": {**dict.fromkeys(MEETINGS | AUDIT, "refused"), **dict.fromkeys(ADMIN, "sign in")},
    "agent": {
        **dict.fromkeys(MEETINGS, "allowed"),
        **dict.fromkeys(AUDIT, "refused"),
        **dict.fromkeys(ADMIN, "sign in"),
    },
    "auditor": {
        **dict.fromkeys(MEETINGS, "refused"),
        "lookup": "sent to the audit log",  # the start page, where sign-in lands
        **dict.fromkeys(AUDIT, "allowed"),
        **dict.fromkeys(ADMIN, "sign in"),
    },
    "admin": dict.fromkeys(URLS, "allowed"),
}


def client_for(role: str, request) -> Client:
    client = Client()
    if role != "anonymous":
        fixture = "admin_user" if role == "admin" else role
        client.force_login(request.getfixturevalue(fixture))
    return client


def outcome(response, refusals: int) -> str:
    location = response.get("Location", "")
    if response.status_code == 302 and "/login/" in location:
        return "sign in"
    if response.status_code == 302 and location == "/audit/" and refusals == 0:
        return "sent to the audit log"
    if response.status_code == 403 and refusals == 1:
        return "refused"
    if response.status_code < 500 and refusals == 0:
        return "allowed"
    return f"unexpected {response.status_code} ({refusals} refusals recorded)"


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("name", list(URLS))
def test_permission_matrix(role, name, request, audit_entry):
    entry = audit_entry(meeting_id=MEETING)
    method, url, data = URLS[name]
    client = client_for(role, request)

    response = getattr(client, method)(url.format(entry=entry.pk), data or {})

    refusals = AuditEntry.objects.filter(action=Action.PERMISSION_DENIED).count()
    assert outcome(response, refusals) == EXPECTED[role][name]


def test_auditor_group_reads_and_exports_the_audit_log():
    codenames = Group.objects.get(name="Auditor").permissions.values_list("codename", flat=True)

    assert sorted(codenames) == ["export_auditentry", "view_auditentry"]


def test_reading_without_the_export_permission_refuses_the_export(client, audit_entry):
    reader = User.objects.create_user("reader")
    reader.user_permissions.add(
        *Group.objects.get(name="Auditor").permissions.filter(codename="view_auditentry")
    )
    client.force_login(reader)

    assert client.get("/audit/").status_code == 200
    assert client.get("/audit/export.csv").status_code == 403


def test_admin_cannot_change_or_delete_entries_in_django_admin(admin_client, audit_entry):
    entry = audit_entry()

    page = admin_client.get(f"/admin/audit/auditentry/{entry.pk}/change/").content.decode()
    delete = admin_client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"})

    assert 'name="_save"' not in page
    assert delete.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
