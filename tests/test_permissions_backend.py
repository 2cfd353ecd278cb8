"""accounts/backends.py: the same permissions as Django's ModelBackend, in one query."""

from __future__ import annotations

import pytest
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Permission

from accounts.backends import ModelBackend
from tests.conftest import _user

pytestmark = pytest.mark.django_db


def fresh(user):
    return type(user).objects.get(pk=user.pk)


@pytest.mark.parametrize(
    ("groups", "own", "superuser"),
    [
        (("Support",), (), False),
        (("Auditor",), (), False),
        (("Support", "Auditor"), ("view_stafftoken",), False),
        ((), ("lookup_meeting",), False),
        ((), (), False),
        ((), (), True),
    ],
)
def test_the_same_permissions_as_djangos_backend_in_one_query(
    groups, own, superuser, django_assert_num_queries
):
    user = _user("someone", *groups, is_superuser=superuser)
    user.user_permissions.set(Permission.objects.filter(codename__in=own))

    someone = fresh(user)
    with django_assert_num_queries(1):
        ours = ModelBackend().get_all_permissions(someone)

    assert ours == DjangoModelBackend().get_all_permissions(fresh(user))


def test_an_inactive_account_has_no_permissions(agent):
    agent.is_active = False
    agent.save()

    assert ModelBackend().get_all_permissions(fresh(agent)) == set()
    assert not fresh(agent).has_perm("meetings.lookup_meeting")
