"""Saving, replacing and removing an agent's Connvo tokens."""

import io
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import Action, AuditEntry
from audit.services import storable
from meetings import credentials, pasted_tokens
from meetings.models import StaffToken
from meetings.views.tokens import _lasting
from tests.conftest import examples

pytestmark = pytest.mark.django_db


def save(client, deployment, token):
    return client.post(
        reverse("meetings:token_save", args=[deployment]),
        {f"{deployment}-deployment": deployment, f"{deployment}-token": token},
    )


def test_anonymous_is_sent_to_sign_in(client):
    assert client.get(reverse("meetings:tokens")).status_code == 302


def test_saved_token_is_encrypted_and_never_shown_in_full(agent_client, agent, fake_connvo):
    token = fake_connvo.token_for("agent")

    response = save(agent_client, "dev", token)

    assert response.status_code == 302
    stored = StaffToken.objects.get(user=agent, deployment="dev")
    assert token.encode() not in bytes(stored.ciphertext)
    assert credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev")) == token
    page = agent_client.get(reverse("meetings:tokens")).content.decode()
    assert f"…{token[-4:]}" in page
    assert token not in page
    assert token[-12:] not in page
    assert fake_connvo.users["agent"].sub in page
    assert AuditEntry.objects.get().action == Action.TOKEN_SAVED


def test_bearer_prefix_and_whitespace_are_tolerated(agent_client, agent, fake_connvo):
    token = fake_connvo.token_for("agent")

    save(agent_client, "dev", f"  Bearer {token}\n")

    assert credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev")) == token


@pytest.mark.parametrize(
    "wrapped",
    [
        '"{t}"',
        "'{t}'",
        '"value":"{t}"',
        '"value": "{t}",',
        "{t},",
        '  "Bearer {t}"\n',
        'Bearer "{t}"',
    ],
)
def test_a_token_copied_with_its_quotes_or_json_key_is_saved_as_the_token(
    agent_client, agent, fake_connvo, wrapped
):
    """The help says to copy the `value` from "eyJ" to just before its closing quote: a paste
    that took the quotes, the key or the comma too was refused as "its parts cannot be read"."""
    token = fake_connvo.token_for("agent")

    response = save(agent_client, "dev", wrapped.format(t=token))

    assert response.status_code == 302
    assert credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev")) == token


@given(
    prefix=st.lists(st.sampled_from(['"value":', '"value" : ', '"', "'", "Bearer ", " ", "\n"])),
    suffix=st.lists(st.sampled_from(['"', "'", ",", " ", "\n"])),
)
@settings(max_examples=examples(150), deadline=None)
def test_what_surrounds_a_token_is_taken_off_and_never_what_is_inside(prefix, suffix):
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_"

    pasted = "".join(prefix) + token + "".join(suffix)

    unwrapped = pasted_tokens._unwrapped(pasted)

    # Only what surrounds the token is taken off, never a character of it: what is left is a
    # piece of the paste that holds the whole token (what an odd paste leaves over, a quote or a
    # second key, makes `inspect_token` refuse it, never change it).
    assert token in unwrapped and unwrapped in pasted


def test_a_paste_longer_than_any_token_says_so_not_that_it_has_spaces(agent_client):
    """A paste of 16,385 to 16,400 characters without a space was blamed on "spaces or line
    breaks"; above that, the form's own limit answered with a generic length error."""
    for length in (16_385, 16_401, 40_000):
        pasted = "eyJ" + "a" * (length - 7) + ".b.c"
        assert len(pasted) == length

        page = save(agent_client, "dev", pasted).content.decode()

        assert f"{length:,} characters, where a token has at most 16,384" in page
        assert "spaces or line breaks" not in page and "at most 16400" not in page


def test_replacing_a_token_is_audited_as_a_replacement(agent_client, agent, fake_connvo):
    save(agent_client, "dev", fake_connvo.token_for("agent"))
    newer = fake_connvo.token_for("agent", expires_in=7200)

    save(agent_client, "dev", newer)

    assert credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev")) == newer
    assert StaffToken.objects.filter(user=agent).count() == 1
    assert AuditEntry.objects.order_by("id").last().action == Action.TOKEN_REPLACED


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("", "Paste your Connvo token"),
        ("hunter2", "three parts separated by dots"),
        ("abc.!!!.def", "cannot be read"),
        ("eyJhbGciOiJSUzI1NiJ9 eyJzdWIiOiJ4In0.sig", "spaces or line breaks"),
    ],
)
def test_unusable_paste_is_explained_and_not_echoed(agent_client, agent, pasted, says):
    response = save(agent_client, "dev", pasted)

    page = response.content.decode()
    assert response.status_code == 400
    assert says in page
    if pasted:
        assert pasted not in page
    assert not StaffToken.objects.exists()


def test_expired_token_is_refused(agent_client, fake_connvo):
    expired = fake_connvo.issue_token(sub=fake_connvo.users["agent"].sub, expires_in=-3600)

    response = save(agent_client, "dev", expired)

    assert response.status_code == 400
    assert "That token expired on" in response.content.decode()


def test_token_expiring_soon_is_flagged(agent_client, agent, fake_connvo):
    # A token issued a week ago, with an hour left: it is running out, unlike a one-hour token.
    week_ago = int(time.time()) - 7 * 24 * 3600
    token = fake_connvo.token_for("agent", expires_in=3600, extra_claims={"iat": week_ago})
    pasted_tokens.store_token(user=agent, deployment_name="dev", raw_token=token)

    page = agent_client.get(reverse("meetings:tokens")).content.decode()

    assert "This token expires in 1 h" in page
    assert "7 d from when Connvo issued it" in page


def test_a_short_lived_token_says_how_long_it_lasts_instead_of_warning(
    agent_client, agent, fake_connvo
):
    # Read from the token's own iat and exp: a token that always lives less than the warning's
    # notice would otherwise be "about to expire" on every visit.
    pasted_tokens.store_token(
        user=agent, deployment_name="dev", raw_token=fake_connvo.token_for("agent", expires_in=300)
    )

    page = agent_client.get(reverse("meetings:tokens")).content.decode()

    assert "5 min from when Connvo issued it" in page
    assert "Connvo's tokens for dev last 5 min" in page
    assert "Replace it before then" not in page
    assert "last only minutes" not in page


def test_saving_a_token_says_how_long_it_lasts(agent_client, fake_connvo):
    response = save(agent_client, "dev", fake_connvo.token_for("agent", expires_in=2 * 3600))

    page = agent_client.get(response["Location"]).content.decode()
    assert "It lasts 2 h from when Connvo issued it." in page


@pytest.mark.parametrize(
    "claims",
    [{"iat": None}, {"iat": "yesterday"}, {"iat": True}],
    ids=["no iat", "text", "boolean"],
)
def test_a_token_that_does_not_say_when_it_was_issued_has_no_lifetime(fake_connvo, claims):
    token = fake_connvo.token_for("agent", extra_claims=claims)

    assert pasted_tokens.token_lifetime(token) is None


def test_a_token_that_expires_past_any_calendar_has_no_lifetime_either(fake_connvo):
    # Read as the expiry is (credentials.read_claims): no expiry date, so no "lasts 11,574,074 d".
    token = fake_connvo.token_for("agent", extra_claims={"exp": 10**12})

    assert credentials.read_claims(token).expires_at is None
    assert pasted_tokens.token_lifetime(token) is None


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Asia/Tokyo", "Pacific/Pago_Pago"])
def test_a_token_that_expires_at_the_calendars_end_leaves_the_tokens_page_usable(
    zone, agent_client, agent, fake_connvo
):
    # 31 Dec 9999, 23:59:59 UTC: east of UTC, a date in year 10000.
    agent_client.cookies["console_tz"] = zone
    token = fake_connvo.token_for("agent", extra_claims={"exp": 253402300799, "iat": 0})

    saved = save(agent_client, "dev", token)

    assert saved.status_code == 302
    assert StaffToken.objects.get(user=agent).expires_at is None
    page = agent_client.get(reverse("meetings:tokens"))
    assert page.status_code == 200
    assert "The token has no expiry date (or one beyond the calendar)" in page.content.decode()


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("end", [datetime.min, datetime.max], ids=["first", "last"])
def test_a_token_saved_with_an_expiry_at_the_calendars_end_can_still_be_replaced(
    zone, end, agent_client, agent, fake_connvo
):
    # Saved before such an expiry was read as none.
    pasted_tokens.store_token(
        user=agent, deployment_name="dev", raw_token=fake_connvo.token_for("agent")
    )
    StaffToken.objects.update(expires_at=end.replace(tzinfo=UTC))
    agent_client.cookies["console_tz"] = zone

    page = agent_client.get(reverse("meetings:tokens"))

    assert page.status_code == 200
    assert "Replace" in page.content.decode()


@pytest.mark.parametrize("sub", ["a\x00b", "a\ud800b"], ids=["NUL", "surrogate"])
def test_a_token_naming_its_user_with_characters_no_database_holds_is_saved_marked(
    sub, agent_client, agent, fake_connvo
):
    # JSON can carry "\u0000" and a lone "\ud800"; PostgreSQL refuses the first (which looked like
    # the database being down) and no database encodes the second.
    response = save(agent_client, "dev", fake_connvo.token_for("agent", extra_claims={"sub": sub}))

    assert response.status_code == 302
    assert StaffToken.objects.get(user=agent).subject == "a\ufffdb"
    assert "a\ufffdb" in agent_client.get(reverse("meetings:tokens")).content.decode()


@settings(max_examples=examples(25), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sub=st.text(max_size=300), sid=st.text(max_size=300))
def test_any_user_and_session_a_token_names_is_stored_as_far_as_a_database_can(
    sub, sid, agent, fake_connvo
):
    token = fake_connvo.token_for("agent", extra_claims={"sub": sub, "sid": sid})

    stored = pasted_tokens.store_token(user=agent, deployment_name="dev", raw_token=token)

    assert StaffToken.objects.get(pk=stored.pk).subject == storable(sub)[:255]


def test_lifetime_is_exp_less_iat(fake_connvo):
    issued = int(time.time()) - 100
    token = fake_connvo.token_for("agent", expires_in=500, extra_claims={"iat": issued})

    assert pasted_tokens.token_lifetime(token) == timedelta(seconds=600)


def test_token_already_expired_is_flagged(agent_client, agent, fake_connvo):
    pasted_tokens.store_token(
        user=agent, deployment_name="dev", raw_token=fake_connvo.token_for("agent")
    )
    StaffToken.objects.update(expires_at=timezone.now() - timedelta(minutes=5))

    page = agent_client.get(reverse("meetings:tokens")).content.decode()

    assert "This token has expired" in page


def test_remove_token(agent_client, agent, fake_connvo):
    pasted_tokens.store_token(
        user=agent, deployment_name="dev", raw_token=fake_connvo.token_for("agent")
    )

    response = agent_client.post(
        reverse("meetings:token_remove", args=["dev"]), {"deployment": "dev"}
    )

    assert response.status_code == 302
    assert not StaffToken.objects.exists()
    assert AuditEntry.objects.get().action == Action.TOKEN_REMOVED


def test_agents_only_see_their_own_tokens(agent_client, outsider, fake_connvo):
    other = fake_connvo.token_for("alice")
    pasted_tokens.store_token(user=outsider, deployment_name="dev", raw_token=other)

    page = agent_client.get(reverse("meetings:tokens")).content.decode()

    assert f"…{other[-4:]}" not in page
    assert "No token saved" in page


def test_unknown_deployment_cannot_be_saved(agent_client, fake_connvo):
    response = save(agent_client, "moon", fake_connvo.token_for("agent"))

    assert response.status_code == 302
    assert not StaffToken.objects.exists()
    # Worded as a lookup on that deployment is (meetings/deployments.py).
    page = agent_client.get(response["Location"]).content.decode()
    assert "There is no Connvo deployment called “moon”. Choose one of: dev, prod." in page


def test_token_from_a_removed_key_asks_to_save_again(agent, fake_connvo, settings):
    from cryptography.fernet import Fernet

    pasted_tokens.store_token(
        user=agent, deployment_name="dev", raw_token=fake_connvo.token_for("agent")
    )
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(credentials.NoToken) as caught:
        credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev"))

    assert "Save your token again" in caught.value.message


def test_rotated_keys_still_decrypt(agent, fake_connvo, settings):
    from cryptography.fernet import Fernet

    token = fake_connvo.token_for("agent")
    pasted_tokens.store_token(user=agent, deployment_name="dev", raw_token=token)
    settings.TOKEN_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.TOKEN_ENCRYPTION_KEYS,
    ]

    assert credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev")) == token


def test_rotate_token_keys_reencrypts_under_the_newest_key(agent, fake_connvo, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    token = fake_connvo.token_for("agent")
    pasted_tokens.store_token(user=agent, deployment_name="dev", raw_token=token)
    old_keys = list(settings.TOKEN_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [new_key, *old_keys]

    call_command("rotate_token_keys", stdout=io.StringIO())
    settings.TOKEN_ENCRYPTION_KEYS = [new_key]  # the old key is gone

    assert credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev")) == token


@pytest.mark.parametrize(
    ("lifetime", "words"),
    [
        (timedelta(days=1, hours=23, minutes=45), "2 d"),  # was "1 d 24 h"
        (timedelta(days=1, hours=23, minutes=29), "1 d 23 h"),
        (timedelta(hours=23, minutes=40), "1 d"),
        (timedelta(hours=23, minutes=20), "23 h 20 min"),
        (timedelta(days=6, hours=23, minutes=31), "7 d"),
        (timedelta(days=3, minutes=30), "3 d 1 h"),  # a half hour up, as the page rounds
    ],
)
def test_how_long_a_token_lasts_is_rounded_once(lifetime, words):
    assert _lasting(lifetime) == words


@given(st.integers(min_value=0, max_value=400 * 86_400))
@settings(max_examples=examples(300))
def test_how_long_a_token_lasts_never_says_24_h_and_is_within_its_rounding(seconds):
    words = _lasting(timedelta(seconds=seconds))

    units = {"d": 86_400, "h": 3600, "min": 60, "s": 1}
    parts = words.split()
    said = sum(int(n) * units[unit] for n, unit in zip(parts[::2], parts[1::2], strict=True))
    assert "24 h" not in words and "60 min" not in words
    # To the hour from a day on (to the day from a week on), else to the minute.
    slack = 43_200 if seconds >= 7 * 86_400 - 1800 else 1800 if seconds >= 84_600 else 30
    assert abs(said - seconds) <= slack


@pytest.mark.django_db
def test_deleting_an_account_records_the_removal_of_its_pasted_token(agent, agent_token):
    agent.delete()

    assert not StaffToken.objects.exists()
    (entry,) = AuditEntry.objects.filter(action=Action.TOKEN_REMOVED)
    assert entry.deployment == "dev"
    assert entry.detail == "agent's credential, forgotten as the account was deleted"
