"""The audit log: one append-only, hash-chained row per Connvo lookup and per security-relevant
event, plus the chain's head and the results of verifying it."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Action(models.TextChoices):
    LOOKUP = "lookup", "Meeting lookup"
    TOKEN_SAVED = "token_saved", "Token saved"
    TOKEN_REPLACED = "token_replaced", "Token replaced"
    TOKEN_REMOVED = "token_removed", "Token removed"
    SIGN_IN = "sign_in", "Signed in"
    SIGN_OUT = "sign_out", "Signed out"
    SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
    PERMISSION_DENIED = "permission_denied", "Permission denied"
    AUDIT_EXPORTED = "audit_exported", "Audit log exported"
    AUDIT_PURGED = "audit_purged", "Old audit entries deleted"
    AUDIT_KEY_ROTATED = "audit_key_rotated", "Audit chain key rotated"
    AUDIT_VIEWED = "audit_viewed", "Audit log viewed"
    CONNVO_CONNECTED = "connvo_connected", "Connvo account connected"
    CONNVO_DISCONNECTED = "connvo_disconnected", "Connvo account disconnected"
    CONNVO_CONNECT_FAILED = "connvo_connect_failed", "Connvo account connection failed"
    TOKEN_REFRESHED = "token_refreshed", "Connvo access token refreshed"
    TOKEN_REFRESH_FAILED = "token_refresh_failed", "Connvo access token refresh failed"
    ACCESS_CHANGED = "access_changed", "Access changed"


class Via(models.TextChoices):
    PAGE = "page", "Page"
    REFRESH = "refresh", "Live refresh"
    CLI = "cli", "Command line"
    TABLE = "table", "Triage table"


class AppendOnlyError(Exception):
    """Something tried to change or delete an audit entry through the ORM."""


NEVER_CHANGED = "Audit entries are never changed."
ONLY_PURGED = (
    "Audit entries are deleted only by `manage.py audit_purge`, which keeps the chain whole."
)


class Who(models.Model):
    """Who acted, and from where: the same columns on an entry, a span and a counted refusal,
    filled by `services.who()`."""

    # The console account; NULL once it is deleted (`actor_username` stays).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # the indexes that need it start with it
    )
    # Kept as written at the time, so the record survives the account being renamed or deleted.
    # For a failed sign-in, the username that was tried.
    actor_username = models.CharField(max_length=150, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        abstract = True


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(NEVER_CHANGED)

    def delete(self):
        raise AppendOnlyError(ONLY_PURGED)


class AuditEntry(Who):
    """Never updated or deleted by the app. Holds no token and none of a meeting's contents: only
    who asked for what, when, from where, and how it ended.

    `mac` chains the entries: HMAC-SHA256 over this entry's fields and the previous entry's `mac`
    (see audit/chain.py), so an edited, deleted or inserted entry is found by `audit_verify`."""

    at = models.DateTimeField(default=timezone.now)
    # Who (`Who`): `actor` is not part of the MAC (deleting an account sets it to NULL, the only
    # change the database allows; audit_by_actor starts with it); `actor_username` is the record.
    action = models.CharField(max_length=32, choices=Action.choices)
    via = models.CharField(max_length=16, choices=Via.choices, blank=True)
    deployment = models.CharField(max_length=64, blank=True)
    meeting_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    connvo_request_id = models.CharField(max_length=64, blank=True)
    # The console's own request id (also on the request's log line), to find the logs of a lookup.
    request_id = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    # How many Connvo calls the record stands for: 1 for a lookup, the part's calls for a sealed
    # span, 0 for anything else. NULL on entries written before spans existed (read as 1 for a
    # lookup, 0 otherwise: `call_count`), so an existing log needs no rewrite.
    calls = models.PositiveIntegerField(null=True, blank=True)
    # How many requests a counted record stands for (repeated refusals from one source in one
    # minute: audit/repeats.py). NULL: one, as every entry before counted records.
    repeats = models.PositiveIntegerField(null=True, blank=True)
    # A sealed span's or a counted record's facts: when it ran, its calls per outcome, the first
    # and last Connvo request ids (spans); the first and last request and a sample of what was
    # tried (counted records). NULL on ordinary entries. Chained like every other field.
    tally = models.JSONField(null=True, blank=True)
    mac = models.CharField(max_length=64, editable=False)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-at", "-id"]
        permissions = [("export_auditentry", "Can export audit entries")]
        # Only what the pages, filters, exports and flags read, now that the summaries answer the
        # counts (#22; each measured with EXPLAIN, docs/performance.md "Indexes kept and dropped").
        # Each ends in the page order (at, id), so a filtered page is a short index range scan
        # however large the table grows. A filter on a common value (a lookup, "found", a live
        # refresh, a page) reads the newest-first index and finds its page at once; the uncommon
        # values have small partial indexes, so that a filter matching few entries (or none) is
        # not a scan of the whole log.
        indexes = [
            models.Index(fields=["-at", "-id"], name="audit_newest_first"),
            # A user's recent lookups (the lookup page), and deleting an account.
            models.Index(fields=["actor", "-at", "-id"], name="audit_by_actor"),
            # The staff filter and page, and their exports (with a deployment: filtered here).
            models.Index(fields=["actor_username", "-at", "-id"], name="audit_by_staff"),
            # A meeting's page sums up its whole history (who looked, per deployment, its
            # overview): on PostgreSQL the index carries the columns those read, so a busy
            # meeting's thousands of entries are read from the index alone, not fetched one by
            # one from all over the table.
            # With `calls` and `repeats`, what a record counts for (audit/records.py WEIGHT).
            models.Index(
                fields=["meeting_id", "-at", "-id"],
                include=[
                    "action",
                    "via",
                    "outcome",
                    "actor_username",
                    "deployment",
                    "calls",
                    "repeats",
                ],
                name="audit_by_meeting_counts",
            ),
            # A meeting's sealed spans and counted records (few), whose tallies its page reads
            # to count a span's calls per outcome, without visiting its other entries.
            models.Index(
                fields=["meeting_id"],
                name="audit_records_by_meeting",
                condition=models.Q(tally__isnull=False),
            ),
            # Which deployment is the uncommon one differs from one console to the next.
            models.Index(fields=["deployment", "-at", "-id"], name="audit_by_deployment"),
            models.Index(
                fields=["action", "-at", "-id"],
                name="audit_by_action_uncommon",
                condition=~models.Q(action="lookup"),
            ),
            models.Index(
                fields=["outcome", "-at", "-id"],
                name="audit_by_outcome_uncommon",
                condition=models.Q(outcome__gt="") & ~models.Q(outcome="found"),
            ),
            # An uncommon outcome of one kind of request (`via=refresh&outcome=not_visible`):
            # the outcome's own index would read every entry of that outcome to find few or none.
            models.Index(
                fields=["outcome", "via", "-at", "-id"],
                name="audit_by_outcome_via_uncommon",
                condition=models.Q(outcome__gt="") & ~models.Q(outcome="found"),
            ),
            models.Index(
                fields=["via", "-at", "-id"],
                name="audit_by_via_uncommon",
                condition=~models.Q(via__in=["", "page", "refresh"]),
            ),
            # For the admin's search by Connvo request ID; only failed lookups have one.
            models.Index(
                fields=["connvo_request_id"],
                name="audit_by_connvo_request",
                condition=~models.Q(connvo_request_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {self.meeting_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError(NEVER_CHANGED)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(ONLY_PURGED)

    @property
    def call_count(self) -> int:
        """The Connvo calls this record stands for (entries from before spans: one per lookup)."""
        if self.calls is not None:
            return self.calls
        return 1 if self.action == Action.LOOKUP else 0

    @property
    def request_count(self) -> int:
        return self.repeats if self.repeats is not None else 1


# What the Auditor group holds (migration 0004): reading the log (the model's own view
# permission), which also sends someone who may not look meetings up to the log at sign-in, and
# exporting it.
VIEW_LOG_PERMISSION = "audit.view_auditentry"
EXPORT_LOG_PERMISSION = "audit.export_auditentry"


class ChainHead(models.Model):
    """The one row every append locks, so entries join the chain one at a time even with several
    workers on several hosts. It also remembers where the chain starts after a purge."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    last_entry_id = models.BigIntegerField(null=True, blank=True)
    last_mac = models.CharField(max_length=64)
    # After `audit_purge`: the newest deleted entry and its MAC, which the oldest remaining entry
    # chains to. Before any purge: NULL and the genesis value.
    purged_through_id = models.BigIntegerField(null=True, blank=True)
    purged_through_mac = models.CharField(max_length=64)
    # The id of the key the next entry is written under (audit/chain.py `key_id`, never the key).
    # Only `audit_rotate_key` changes it, in the transaction of the rotation's own entry.
    key_id = models.CharField(max_length=16, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="one_chain_head")]

    def __str__(self) -> str:
        return f"chain head at entry {self.last_entry_id}"


class ChainVerification(models.Model):
    """The result of one `audit_verify` run, shown on the audit pages."""

    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    entries_checked = models.BigIntegerField()
    first_bad_id = models.BigIntegerField(null=True, blank=True)
    # The newest entry a successful walk verified (the checkpoint it emitted witnesses it).
    last_entry_id = models.BigIntegerField(null=True, blank=True)
    # A walk from a checkpoint (`audit_verify --since-checkpoint`): the witnessed entry it started
    # after, which an earlier walk verified. NULL: the whole chain was walked.
    from_entry_id = models.BigIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["-at", "-id"], name="verification_newest_first")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {'OK' if self.ok else 'BROKEN'}"


class ChainCheckpoint(models.Model):
    """A checkpoint the console witnessed (`audit_checkpoint`, `audit_verify`), kept to show on
    the audit pages. The witness that counts is the signed copy outside the database: the log
    line and `AUDIT_CHECKPOINT_FILE`."""

    at = models.DateTimeField(default=timezone.now)
    last_entry_id = models.BigIntegerField(null=True, blank=True)
    last_mac = models.CharField(max_length=64)
    entries = models.BigIntegerField()
    key_id = models.CharField(max_length=16)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["-at", "-id"], name="checkpoint_newest_first")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} at entry {self.last_entry_id}"


class ActivityHour(models.Model):
    """How many entries the log holds per hour, action, via, deployment and outcome: the audit
    overview's chart and outcome breakdown read this instead of millions of entries.

    Filled from the log in the chain's order by `audit/rollup.py` (a command, and the audit page
    itself), never on the lookup's own write path. A summary, not the record: nothing here is
    chained, and it can be rebuilt from the entries at any time."""

    hour = models.DateTimeField()  # the start of the hour, UTC
    action = models.CharField(max_length=32)
    via = models.CharField(max_length=16, blank=True)
    deployment = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    # Sums of records' calls (each up to 2**31 - 1, as `AuditEntry.calls`), here and in the
    # other summaries: bigints, so that no sum of any records can overflow (a tampered record
    # included: the auditor's pages must still open to show it).
    entries = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "action", "via", "deployment", "outcome"],
                name="activity_hour_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.action} x{self.entries}"


# ActivityDay's columns for the day's hours (UTC), h00 for 00:00-00:59 and so on.
DAY_HOURS = tuple(f"h{n:02d}" for n in range(24))


class ActivityDay(models.Model):
    """`ActivityHour` summed per day (UTC): a long range's overview reads one row per day and kind
    of entry instead of twenty-four. The day's hours stay side by side (`h00` … `h23`), so a chart
    per day in the viewer's own time zone still puts every hour on its own local day.

    Filled with `ActivityHour` by `audit/rollup.py`, from the same counts; like it, a summary that
    can be rebuilt from the entries at any time."""

    day = models.DateField()
    action = models.CharField(max_length=32)
    via = models.CharField(max_length=16, blank=True)
    deployment = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    entries = models.PositiveBigIntegerField(default=0)
    h00 = models.PositiveBigIntegerField(default=0)
    h01 = models.PositiveBigIntegerField(default=0)
    h02 = models.PositiveBigIntegerField(default=0)
    h03 = models.PositiveBigIntegerField(default=0)
    h04 = models.PositiveBigIntegerField(default=0)
    h05 = models.PositiveBigIntegerField(default=0)
    h06 = models.PositiveBigIntegerField(default=0)
    h07 = models.PositiveBigIntegerField(default=0)
    h08 = models.PositiveBigIntegerField(default=0)
    h09 = models.PositiveBigIntegerField(default=0)
    h10 = models.PositiveBigIntegerField(default=0)
    h11 = models.PositiveBigIntegerField(default=0)
    h12 = models.PositiveBigIntegerField(default=0)
    h13 = models.PositiveBigIntegerField(default=0)
    h14 = models.PositiveBigIntegerField(default=0)
    h15 = models.PositiveBigIntegerField(default=0)
    h16 = models.PositiveBigIntegerField(default=0)
    h17 = models.PositiveBigIntegerField(default=0)
    h18 = models.PositiveBigIntegerField(default=0)
    h19 = models.PositiveBigIntegerField(default=0)
    h20 = models.PositiveBigIntegerField(default=0)
    h21 = models.PositiveBigIntegerField(default=0)
    h22 = models.PositiveBigIntegerField(default=0)
    h23 = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "action", "via", "deployment", "outcome"],
                name="activity_day_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.action} x{self.entries}"


class StaffDay(models.Model):
    """One staff member's lookups on one day (UTC), filled with `ActivityHour`: the most active
    staff and each one's habits (the baseline of the "worth a look" flags)."""

    day = models.DateField()
    actor_username = models.CharField(max_length=150, blank=True)
    lookups = models.PositiveBigIntegerField(default=0)  # not counting live refreshes
    not_visible = models.PositiveBigIntegerField(default=0)
    refreshes = models.PositiveBigIntegerField(default=0)
    # Bit n set: they made a lookup (refreshes aside) between n:00 and n:59 UTC that day.
    hours = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "actor_username"], name="staff_day_unique")
        ]
        indexes = [models.Index(fields=["actor_username", "day"], name="staff_day_by_staff")]

    def __str__(self) -> str:
        return f"{self.day} {self.actor_username} x{self.lookups}"


class StaffHour(models.Model):
    """One staff member's lookups (live refreshes aside) in one hour (UTC), and how many different
    meetings they were of: the "worth a look" flags read a window's whole hours from here instead
    of the window's entries (a week is ~190,000 entries at 10 M). Filled with `ActivityHour` by
    `audit/rollup.py`. A count of different meetings cannot be added to: a recent hour keeps its
    meetings to add a batch's to, an older one is counted again from its entries when touched."""

    hour = models.DateTimeField()  # the start of the hour, UTC
    actor_username = models.CharField(max_length=150, blank=True)
    lookups = models.PositiveBigIntegerField(default=0)
    not_visible = models.PositiveBigIntegerField(default=0)
    meetings = models.PositiveIntegerField(default=0)
    # The meetings themselves while the hour is recent (rollup.OPEN_HOURS), so that counting a
    # new batch adds to them instead of reading the hour's entries again; None once closed.
    meeting_ids = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "actor_username"], name="staff_hour_unique")
        ]
        indexes = [
            models.Index(
                fields=["hour"],
                condition=models.Q(meeting_ids__isnull=False),
                name="staff_hour_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.actor_username} x{self.lookups}"


class RollupProgress(models.Model):
    """The one row saying how far the summaries (`ActivityHour`, `ActivityDay`, `StaffDay`,
    `StaffHour`) have counted: every entry up to this id."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    last_entry_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="one_rollup_progress")]

    def __str__(self) -> str:
        return f"activity counted up to entry {self.last_entry_id}"


class SeenMeeting(models.Model):
    """What the console last saw of a meeting when a staff member's lookup found it: its title
    and state, so that the pages listing meetings (recent lookups, the audit log, a meeting's
    history, the overview) can name it. One row per meeting and staff member: an agent's recent
    lookups name a meeting only by what Connvo showed that agent (not a title seen later by a
    colleague, after the agent lost the meeting); the audit pages by the newest of them. Connvo
    data, so kept no longer than the audit entries that saw it: `audit_purge` deletes those
    last seen before its cutoff. Not part of the chain (the entries are the record); written
    after the entries, and never needed to show or audit a lookup."""

    deployment = models.CharField(max_length=64)
    meeting_id = models.CharField(max_length=64)
    # The username of the staff member whose lookup saw it ("" for rows kept before 8 December
    # 2026, of nobody's in particular: the audit pages still name meetings by them).
    seen_by = models.CharField(max_length=150, blank=True, default="")
    title = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=32, blank=True)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "meeting_id", "seen_by"], name="seen_meeting_once_each"
            )
        ]
        indexes = [models.Index(fields=["seen_at"], name="seen_meeting_purge")]

    def __str__(self) -> str:
        return f"{self.title or self.meeting_id} on {self.deployment}"


class Span(Who):
    """One open page's Connvo calls for one meeting (a meeting page and its live refreshes, or one
    meeting of a triage table or the watch list), counted as they happen instead of appended to
    the chain one row each. Not the record: the chain is. `calls` is counted durably *before* each
    call (an intent), its outcome in `SpanCount` after it; `audit/spans.py` seals what was
    answered into the chain (`AuditEntry` with `calls` and `tally`) while the page stays open and
    when it goes quiet, and seals calls that never got an outcome (a worker killed mid-call) as
    unanswered. Every call at Connvo is in the chain's `calls` + every span's
    `calls - sealed_calls` (plus, at most, calls counted by a worker that died before sending
    them)."""

    # The page's own key (in its poller's values), so its refreshes find their span.
    key = models.CharField(max_length=32)
    deployment = models.CharField(max_length=64)
    meeting_id = models.CharField(max_length=64)
    via = models.CharField(max_length=16, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)  # the last call counted
    calls = models.PositiveBigIntegerField(default=0)  # counted before each call is made
    sealed_calls = models.PositiveBigIntegerField(default=0)  # of those, already in the chain
    sealed_at = models.DateTimeField(null=True, blank=True)
    first_request_id = models.CharField(max_length=64, blank=True)
    last_request_id = models.CharField(max_length=64, blank=True)
    # When the page counts as closed if nothing more is counted or held open (audit/spans.py):
    # its last call plus a few of its intervals, moved later every minute while a pushed page,
    # which asks nothing, stays open. Stored, not derived, so that "is it open" is one
    # comparison here, in SQL and in Python alike, however long a page is held open.
    open_until = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "deployment", "meeting_id"], name="span_once")
        ]
        # No index on `last_at` (nor on anything else a call changes): every refresh updates
        # `calls` and `last_at`, and with no index on them PostgreSQL updates the row in place
        # (a HOT update) instead of adding an entry to every index of the table each time. The
        # table holds one row per open page and meeting, so `audit_seal` reads it whole.

    def __str__(self) -> str:
        return f"span {self.key} {self.actor_username} {self.meeting_id} x{self.calls}"

    @staticmethod
    def quiet(now: datetime) -> models.Q:
        """The spans whose page has gone quiet (closed) by `now`: to be sealed finally, and no
        longer waiting for the answers of the calls it counted."""
        return models.Q(open_until__lt=now)

    def is_quiet(self, now: datetime) -> bool:
        """`quiet()`, of this span."""
        return self.open_until < now


class SpanCount(models.Model):
    """A span's answered calls per outcome, and how many of them are already sealed."""

    span = models.ForeignKey(Span, on_delete=models.CASCADE, related_name="counts")
    outcome = models.CharField(max_length=32)
    calls = models.PositiveBigIntegerField(default=0)
    sealed = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["span", "outcome"], name="span_count_once")]

    def __str__(self) -> str:
        return f"{self.outcome} x{self.calls}"


class RepeatCount(Who):
    """Repeats of one refusal from one source in one minute (CSRF refusals, locked-out sign-ins,
    lookups over the limit...): the first of the minute is a full chained entry, the rest are
    counted here and sealed into one chained counted record (`AuditEntry.repeats`) once the
    minute is over (audit/repeats.py). Not the record: the chain is.

    Written by one narrow upsert per repeat. A column that describes the repeats (address,
    browser, deployment, meeting, detail...) keeps its value while every repeat of the minute
    agrees on it and is cleared at the first that does not, so the counted record never names
    one request's value for all of them."""

    source = models.CharField(max_length=160)  # the client address, or the staff member
    action = models.CharField(max_length=32)
    outcome = models.CharField(max_length=32, blank=True)
    # Which refusal, where action and outcome alone do not say (a CSRF refusal and a page refused
    # for want of a permission are both `permission_denied`): audit/repeats.py `KINDS`.
    kind = models.CharField(max_length=32, blank=True, default="")
    minute = models.DateTimeField()  # the start of the minute, UTC
    count = models.PositiveIntegerField(default=0)  # repeats after the minute's first entry
    first_at = models.DateTimeField(null=True, blank=True)
    last_at = models.DateTimeField(null=True, blank=True)
    # Its `actor` is the console account, as an entry's (a signed-in agent's refusals: the lookup
    # limit, a page refused): the counted record links to it as the minute's first entry does,
    # instead of reading as a staff member with no account.
    via = models.CharField(max_length=16, blank=True, default="")
    deployment = models.CharField(max_length=64, blank=True)
    meeting_id = models.CharField(max_length=64, blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    # A few of the distinct values tried (usernames, meetings), for the auditor.
    sample = models.JSONField(default=list, blank=True)
    # Short digests of the distinct values tried, up to a cap: how many different ones there were
    # (the tally's "distinct") without keeping them all.
    seen = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "action", "outcome", "kind", "minute"], name="repeat_count_once"
            )
        ]
        indexes = [models.Index(fields=["minute"], name="repeat_count_by_minute")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.source} {self.action} x{self.count}"
