"""Numbers in the environment (connvo_admin/environment.py, settings.py): a value that is not one,
such as "31536000   # a comment" (an environment file keeps the comment) or "60s", is refused
with ImproperlyConfigured naming the variable and what is wrong, never repeating the value; gunicorn
turns that into a clean exit (connvo_admin/gunicorn_config.py)."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import example, given
from hypothesis import strategies as st

from connvo_admin.environment import Env
from tests.settings_loader import SETTINGS, load_settings, production_environment


def env_with(**values: str) -> Env:
    env = Env()
    env.ENVIRON = values
    return env


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("SECURE_HSTS_SECONDS", "31536000   # after a first week on the default hour", "comment"),
        ("CONNVO_LOOKUPS_PER_MINUTE", "60s", "no unit"),
        ("CONNVO_READ_TIMEOUT", "10 seconds", "no unit"),
        ("AUDIT_FLAG_VOLUME_FACTOR", "5,5", "not one"),
    ],
)
def test_a_number_that_is_not_one_stops_the_settings_naming_the_variable(name, value, problem):
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings(production_environment(**{name: value}))

    message = str(refused.value)
    assert message.startswith(f"{name} must be ")
    assert problem in message
    assert value not in message


def test_the_documented_numbers_load():
    loaded = load_settings(
        production_environment(SECURE_HSTS_SECONDS="31536000", CONNVO_READ_TIMEOUT=" 7.5 ")
    )

    assert loaded["SECURE_HSTS_SECONDS"] == 31536000
    assert loaded["CONNVO_READ_TIMEOUT"] == 7.5


def test_settings_read_numbers_only_through_the_helper():
    # django-environ's env.int / env.float raise a ValueError that names no variable.
    assert not re.search(r"\benv\.(int|float)\(", SETTINGS.read_text())


def test_a_checkpoint_file_with_a_comment_after_it_is_refused():
    with pytest.raises(ImproperlyConfigured, match="AUDIT_CHECKPOINT_FILE has a comment"):
        load_settings(
            production_environment(
                AUDIT_CHECKPOINT_FILE="/var/lib/connvo-console/audit-checkpoints.jsonl  # host"
            )
        )


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(["", " ", "\t"]))
def test_a_whole_number_is_read_as_written(number, space):
    env = env_with(LIMIT=f"{space}{number}{space}")

    assert env.whole_number("LIMIT", default=7) == number


@given(
    st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False),
)
def test_a_decimal_number_is_read_as_written(number):
    env = env_with(TIMEOUT=f"{number:f}")

    assert env.decimal_number("TIMEOUT", default=1.0) == float(number)


@given(st.text())
@example("60s")
@example("31536000   # a year")
@example("1e3")
@example("nan")
@example("inf")
@example("1_000")
@example("٣")  # a digit, but not an ASCII one
def test_anything_else_is_refused_by_name_without_repeating_it(raw):
    env = env_with(LIMIT=raw)
    if raw.strip() == "":
        assert env.whole_number("LIMIT", default=7) == 7
        assert env.decimal_number("LIMIT", default=0.5) == 0.5
        return
    try:
        whole = env.whole_number("LIMIT", default=7)
    except ImproperlyConfigured as exc:
        assert re.fullmatch(r"LIMIT must be a whole number, and its value [^\n]*\.", str(exc))
        assert str(exc).removeprefix("LIMIT must be a whole number, and ") in PROBLEMS
    else:
        assert re.fullmatch(r"[+-]?[0-9]+", raw.strip())
        assert whole == int(raw)
    try:
        decimal = env.decimal_number("LIMIT", default=0.5)
    except ImproperlyConfigured as exc:
        assert str(exc).removeprefix("LIMIT must be a number such as 10 or 3.05, and ") in PROBLEMS
    else:
        assert decimal == float(raw)


PROBLEMS = {
    "its value goes on after the number with a '#': an environment file keeps a comment on the "
    "same line as part of the value, so put comments on lines of their own.",
    "its value has letters in it (no unit: seconds, counts and limits are digits only).",
    "its value is not one.",
}
