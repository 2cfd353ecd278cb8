"""accounts/backends.py: the same permissions as Django's ModelBackend, in one query."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Group, Permission
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.backends import ModelBackend
from tests.conftest import _user, examples

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


@pytest.fixture
def some_permissions():
    """A handful of permissions from several apps, and two groups of no role."""
    return list(Permission.objects.order_by("pk")[:12])


@given(
    own=st.sets(st.integers(0, 11), max_size=6),
    first_group=st.sets(st.integers(0, 11), max_size=6),
    second_group=st.sets(st.integers(0, 11), max_size=6),
    member_of=st.sets(st.sampled_from(["first", "second"])),
)
@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_mix_of_own_and_group_grants_is_read_exactly_as_django_reads_it(
    some_permissions, own, first_group, second_group, member_of
):
    # The plain SQL query joins four tables and removes duplicates (a permission granted both
    # directly and through a group, or through two groups): it must agree with Django's backend
    # whatever the overlap, and see nothing granted to a group the user is not in.
    groups = {}
    for name, picked in (("first", first_group), ("second", second_group)):
        group, _ = Group.objects.get_or_create(name=f"mix-{name}")
        group.permissions.set([some_permissions[i] for i in picked])
        groups[name] = group
    user, _ = get_user_model().objects.get_or_create(username="mixed-grants")
    user.user_permissions.set([some_permissions[i] for i in own])
    user.groups.set([groups[name] for name in member_of])

    ours = ModelBackend().get_all_permissions(fresh(user))

    assert ours == DjangoModelBackend().get_all_permissions(fresh(user))
    expected = {some_permissions[i] for i in own}
    for name in member_of:
        expected |= {
            some_permissions[i] for i in (first_group if name == "first" else second_group)
        }
    assert ours == {f"{p.content_type.app_label}.{p.codename}" for p in expected}


def test_the_session_user_is_read_as_djangos_backend_reads_it(agent):
    ours = ModelBackend().get_user(agent.pk)

    assert ours == agent
    assert {f.attname: getattr(ours, f.attname) for f in type(agent)._meta.concrete_fields} == {
        f.attname: getattr(agent, f.attname) for f in type(agent)._meta.concrete_fields
    }
    assert ModelBackend().get_user(agent.pk + 1000) is None
    agent.is_active = False
    agent.save()
    assert ModelBackend().get_user(agent.pk) is None
    assert DjangoModelBackend().get_user(agent.pk) is None
