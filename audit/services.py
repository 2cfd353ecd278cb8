"""Writing audit entries. Views, the CLI and the sign-in signals all come through here."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from connvo_admin.client_address import client_ip, valid_ip
from connvo_admin.logs import request_id_var
from connvo_admin.outside_text import storable

from . import chain
from .models import Action, AuditEntry, ChainVerification, SeenMeeting, Via, Who

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Origin:
    """Who is acting and from where."""

    user: AbstractBaseUser | None
    username: str
    client_ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(
        cls, request: HttpRequest, *, signing_in: AbstractBaseUser | None = None
    ) -> Origin:
        """The request's signed-in user, or `signing_in` (an account a sign-in under way acts
        as), from the request's client."""
        user = signing_in or (request.user if request.user.is_authenticated else None)
        return cls(
            user=user,
            username=user.get_username() if user else "",
            client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:512],
        )

    def outliving(self, account_pk: object) -> Origin:
        """This origin for a record written as the account `account_pk` is deleted: unlinked
        from it when it is the one acting (a record cannot point at a row that is going), its
        name, address and browser kept."""
        if self.user is not None and self.user.pk == account_pk:
            return dataclasses.replace(self, user=None)
        return self

    @classmethod
    def for_command(cls, user: AbstractBaseUser) -> Origin:
        return cls(user=user, username=user.get_username(), user_agent="manage.py")

    @classmethod
    def for_maintenance(cls) -> Origin:
        """A maintenance command run by no console user (purge, key rotation)."""
        return cls(user=None, username="", user_agent="manage.py")


_acting: ContextVar[Origin | None] = ContextVar("audit_acting", default=None)


@contextlib.contextmanager
def acting(origin: Origin) -> Iterator[None]:
    """Who is acting for what is done within, for the receivers that record it with no request
    of their own: an account deleted in the admin forgets its Connvo credentials in the name of
    the administrator (meetings/signals.py), not of nobody."""
    token = _acting.set(origin)
    try:
        yield
    finally:
        _acting.reset(token)


def acting_origin() -> Origin | None:
    """The origin `acting` set, if any."""
    return _acting.get()


def fit(value: str | None, field_name: str, model: type[models.Model] = AuditEntry) -> str:
    """Make a value storable and cut it to its column (`model`'s `field_name`), so that text from
    outside (a URL, a username, a header, Connvo's answer) can neither fail the write nor be
    stored differently by different databases (which would break the chain)."""
    return storable(value or "")[: model._meta.get_field(field_name).max_length]


def who(origin: Origin) -> dict:
    """What a record keeps of who acted and from where, fitted to its columns (`Who`'s: the
    same on an entry, a span and a counted refusal)."""
    return {
        "actor_username": fit(origin.username, "actor_username", Who),
        "client_ip": valid_ip(origin.client_ip) if origin.client_ip else None,
        "user_agent": fit(origin.user_agent, "user_agent", Who),
    }


def record(*, rotate_to: str | None = None, **fields) -> AuditEntry:
    """Append one entry to the audit chain: in the caller's transaction if there is one, else
    committed before this returns (`chain.append`). Raises `DatabaseError` when it cannot be
    written: callers that show something decide to fail closed. `fields` are `_entry_fields()`'s
    keyword arguments (an unknown one raises `TypeError`). `calls`: the Connvo calls the entry
    stands for (a lookup's; a sealed span part's, with its `tally`: audit/spans.py).
    `request_id`: the console request the entry is of, when not the current one ("" for none).
    `rotate_to` is for `rotate_chain_key` only."""
    return chain.append(rotate_to=rotate_to, **_entry_fields(**fields))


def record_many(*, origin: Origin, entries: list[dict]) -> list[AuditEntry]:
    """Append several entries by one origin, in order, in one savepoint (all or none), each as
    `record()` would write it. `entries` hold `record()`'s keyword arguments but `origin`."""
    return chain.append_many([_entry_fields(origin=origin, **entry) for entry in entries])


def _entry_fields(
    *,
    origin: Origin,
    action: Action,
    via: Via | str = "",
    deployment: str = "",
    meeting_id: str = "",
    outcome: str = "",
    http_status: int | None = None,
    latency_ms: int | None = None,
    connvo_request_id: str | None = None,
    detail: str = "",
    calls: int | None = None,
    tally: dict | None = None,
    request_id: str | None = None,
) -> dict:
    """What an entry keeps of who acted and of its fields, each fitted to its column: the one
    list of an entry's fields, for `record()` and `record_many()`."""
    return dict(
        actor=origin.user,
        **who(origin),
        action=str(action),
        via=str(via),
        deployment=fit(deployment, "deployment"),
        meeting_id=fit(meeting_id, "meeting_id"),
        outcome=fit(str(outcome), "outcome"),
        http_status=None if http_status is None else int(http_status),
        latency_ms=None if latency_ms is None else int(latency_ms),
        connvo_request_id=fit(connvo_request_id, "connvo_request_id"),
        detail=fit(detail, "detail"),
        request_id=fit(request_id_var.get() if request_id is None else request_id, "request_id"),
        calls=calls,
        tally=tally,
    )


def record_or_log(*, origin: Origin, action: Action, **fields) -> AuditEntry | None:
    """`record()`, failing open: when the entry cannot be written, the failure is logged loudly
    and the caller carries on. For what must happen even while the log is down: refusing a
    sign-in, a sign-out or a lockout page would lock everyone out (auditors included), and a
    refusal stands whether or not it is recorded."""
    try:
        # A savepoint, so a failed write leaves the request's connection usable.
        with transaction.atomic():
            return record(origin=origin, action=action, **fields)
    except DatabaseError:
        logger.exception(
            "audit entry for %s by %r could not be written", action, origin.username or "nobody"
        )
        return None


def remember_seen(seen: list[tuple[str, str, str, str]], *, username: str) -> None:
    """Keep what found lookups by `username` showed of their meetings — (deployment, meeting
    id, title, state) — for the pages that name meetings (`SeenMeeting`): one row per meeting
    and staff member, so that an agent's pages name a meeting only as it was shown to them.
    Fails open: a page without a name is better than a lookup refused over one, and the audit
    entry is already written."""
    if not seen:
        return
    now = timezone.now()
    seen_by = fit(username, "seen_by", SeenMeeting)
    rows = {
        (deployment[:64], meeting_id[:64]): SeenMeeting(
            deployment=deployment[:64],
            meeting_id=meeting_id[:64],
            seen_by=seen_by,
            title=fit(title, "title", SeenMeeting),
            state=fit(state, "state", SeenMeeting),
            seen_at=now,
        )
        for deployment, meeting_id, title, state in seen
    }
    try:
        with transaction.atomic():
            SeenMeeting.objects.bulk_create(
                rows.values(),
                update_conflicts=True,
                unique_fields=["deployment", "meeting_id", "seen_by"],
                update_fields=["title", "state", "seen_at"],
            )
    except DatabaseError:
        logger.exception("the titles of %d seen meetings could not be kept", len(rows))


def os_user() -> str:
    """Who ran a maintenance command on the host, for its audit entry."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


class RetentionTooShort(ValueError):
    pass


class RetentionTooLong(ValueError):
    """A retention that reaches back before the first day a date can hold (1 January of year 1):
    no cutoff can be written for it, and nothing in the log is that old."""

    def __init__(self, longest: int) -> None:
        super().__init__(f"A date reaches back at most {longest} days, to 1 January of year 1.")
        self.longest = longest


class BatchSizeTooSmall(ValueError):
    pass


class ChainBroken(ValueError):
    """The chain does not verify: deleting its oldest entries could delete the evidence."""


# The first moment a date holds: a purge's cutoff can be no earlier.
FIRST_MOMENT = datetime(1, 1, 1, tzinfo=UTC)


def purge_old_entries(*, retention_days: int, batch_size: int = 10_000) -> chain.Purge:
    """Delete the entries older than `retention_days`, after a chained entry that says what will
    be deleted (count, id range, the last one's MAC, the retention): `audit_verify` accepts a
    trimmed chain only when such an entry vouches for exactly where it now starts. Refuses to
    purge a chain that does not verify (the purge would vouch for tampered entries).

    Every argument is checked before that entry is written: a purge that stopped after it would
    leave the chain saying that entries were deleted which are all still there."""
    if batch_size < 1:
        raise BatchSizeTooSmall("A purge deletes at least 1 entry per transaction.")
    if retention_days < settings.AUDIT_MIN_RETENTION_DAYS:
        raise RetentionTooShort(
            f"Entries are kept at least {settings.AUDIT_MIN_RETENTION_DAYS} days "
            "(AUDIT_MIN_RETENTION_DAYS)."
        )
    longest = (timezone.now() - FIRST_MOMENT).days
    if retention_days > longest:
        raise RetentionTooLong(longest)
    plan = chain.plan_purge(retention_days=retention_days)
    verified = _walk_before_purge(plan)
    if not verified.ok:
        raise ChainBroken(verified.message)
    record(
        origin=Origin.for_maintenance(),
        action=Action.AUDIT_PURGED,
        detail=plan.detail(os_user=os_user()),
    )
    purged = chain.purge(plan=plan, batch_size=batch_size)
    # Connvo's titles go with the entries that saw them (they were seen at the entry's time).
    SeenMeeting.objects.filter(seen_at__lt=plan.cutoff).delete()
    return purged


def _walk_before_purge(plan: chain.PurgePlan) -> chain.Verification:
    """Verify the chain before `plan` deletes from it. A successful walk of the whole chain
    within AUDIT_VERIFY_WARN_AFTER_HOURS (what the pages call recent: the monthly `audit_verify`
    run before the purge) that read every entry the plan deletes, with no failed walk since, is
    not made again: the walk starts from the newest checkpoint an earlier walk verified
    (`verify_since_checkpoint`), so a purge reads the days since, not the year before. Otherwise
    (or when no checkpoint can serve) the whole chain is walked, as every purge did before."""
    latest = ChainVerification.objects.order_by("-at", "-id").first()
    recent = timezone.now() - timedelta(hours=settings.AUDIT_VERIFY_WARN_AFTER_HOURS)
    whole = (
        ChainVerification.objects.filter(ok=True, from_entry_id__isnull=True, at__gte=recent)
        .order_by("-at", "-id")
        .values_list("last_entry_id", flat=True)
        .first()
    )
    if latest is None or not latest.ok or whole is None or whole < (plan.last or 0):
        return chain.verify()
    return chain.verify_since_checkpoint(checkpoints=chain.stored_checkpoints())


class NothingToRotate(ValueError):
    pass


def rotate_chain_key() -> str:
    """Move the chain to the first key of AUDIT_CHAIN_KEY: one entry, written under the key in
    use, names the new key's id (never the key); every entry after it uses the new key."""
    new = chain.current_key_id()
    with transaction.atomic():
        head = chain.lock_head()
        old = head.key_id
        if old == new:
            raise NothingToRotate(f"The chain is already written under key {new}.")
        record(
            origin=Origin.for_maintenance(),
            action=Action.AUDIT_KEY_ROTATED,
            detail=chain.rotation_detail(old=old or "unnamed", new=new, os_user=os_user()),
            rotate_to=new,
        )
    return new
