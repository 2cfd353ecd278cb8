"""The groups the data migration creates, and who may use the lookup pages."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_migration_creates_support_with_the_lookup_permission():
    support = Group.objects.get(name="Support")

    assert list(support.permissions.values_list("codename", flat=True)) == ["lookup_meeting"]
    assert Group.objects.filter(name="Auditor").exists()


@pytest.mark.parametrize("url_name", ["meetings:lookup", "meetings:tokens"])
def test_superuser_may_use_the_lookup_pages(client, admin_user, url_name):
    client.force_login(admin_user)

    assert client.get(reverse(url_name)).status_code == 200


def test_auditor_may_not_manage_tokens(client, auditor):
    client.force_login(auditor)

    assert client.get(reverse("meetings:tokens")).status_code == 403


def test_auditor_signing_in_lands_on_the_audit_log(client, auditor):
    from tests.conftest import PASSWORD

    response = client.post(
        reverse("accounts:login"), {"username": "auditor", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("audit:list")
    assert response.status_code == 200
