"""What the chain-health panel at the top of every audit page says: how much of the log the last
verification checked, what was written since and is not checked yet, what the last checkpoint
witnessed, and so whether the panel is green, amber or red.

Every page view pays for it, so it reads single rows by index and counts only the entries newer
than a verification or a checkpoint (an id range, stopped at COUNT_BOUND): never the whole log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings

from .models import Action, AuditEntry, ChainCheckpoint, ChainVerification

# Counting the entries after a verification or a checkpoint stops here ("more than 100,000"):
# a verification is daily, and a busy day's entries (live refreshes included) are fewer.
COUNT_BOUND = 100_000


class Colour(StrEnum):
    GREEN = "ok"  # the whole chain up to a recent checkpoint verified
    AMBER = "warning"  # nothing found wrong, but part of the log is not verified or witnessed
    RED = "error"  # the last verification found a broken link


@dataclass(frozen=True, slots=True)
class Tail:
    """The entries after entry #`after_id` (after none: all of them)."""

    after_id: int | None
    count: int  # exact up to COUNT_BOUND
    more: bool  # there are more than `count`
    first_id: int | None  # the oldest of them, and when it was written
    first_at: datetime | None

    @classmethod
    def after(cls, after_id: int | None) -> Tail:
        entries = AuditEntry.objects.filter(id__gt=after_id or 0).order_by()
        bound = COUNT_BOUND  # read at call time: tests lower it
        # On the primary key: an index range scan of the newest entries only.
        count = entries[: bound + 1].count()
        first = entries.order_by("id").values_list("id", "at").first()
        return cls(
            after_id=after_id,
            count=min(count, bound),
            more=count > bound,
            first_id=first[0] if first else None,
            first_at=first[1] if first else None,
        )


@dataclass(frozen=True, slots=True)
class ChainHealth:
    colour: Colour
    verification: ChainVerification | None  # the latest, whatever it found
    checkpoint: ChainCheckpoint | None  # the latest
    # The newest checkpoint whose entry the last successful verification reached: the chain is
    # verified up to what it witnessed.
    verified_checkpoint: ChainCheckpoint | None
    first_id: int | None  # the oldest and newest entry in the log now
    last_id: int | None
    unverified: Tail  # the entries after the verified range (every entry when none is)
    unwitnessed: Tail  # the entries after the latest checkpoint's (every entry without one)
    # The log's entries now: at the latest checkpoint (the timer counts them, off any page) plus
    # those after it. None when a purge since then makes that count wrong.
    total: int | None
    total_more: bool
    never_verified: bool
    verification_stale: bool  # older than AUDIT_VERIFY_WARN_AFTER_HOURS
    verified_prefix: bool  # entries after the verified range older than the recent window
    checkpoint_stale: bool  # no checkpoint, or none within the recent window
    recent: timedelta  # how old a checkpoint may be and still count as recent
    # When the last verification walked from a checkpoint (`audit_verify --since-checkpoint`):
    # the earlier successful walk that verified the checkpoint's entry and everything before it.
    earlier_walk: ChainVerification | None = None

    @property
    def verified_entries(self) -> int | None:
        """The entries of the verified range still in the log (None when not exactly known)."""
        if self.total is None or self.total_more or self.unverified.more:
            return None
        return self.total - self.unverified.count


def _recent() -> timedelta:
    # The checkpoint timer fires every interval: one missed run is jitter, two a stopped timer.
    return timedelta(seconds=2 * settings.AUDIT_CHECKPOINT_INTERVAL)


def _verified_checkpoint(verification: ChainVerification) -> ChainCheckpoint | None:
    """The newest checkpoint inside the verified range. `audit_verify` emits one at the end of
    what it verified, so looking back from a little before the verification is enough: the scan
    stops at the first match, and reads at most the checkpoints written since."""
    checkpoints = ChainCheckpoint.objects.filter(at__gte=verification.at - _recent())
    if verification.last_entry_id is None:  # an empty log was verified
        checkpoints = checkpoints.filter(last_entry_id__isnull=True)
    else:
        checkpoints = checkpoints.filter(last_entry_id__lte=verification.last_entry_id)
    return checkpoints.order_by("-at", "-id").first()


def _earlier_walk(verification: ChainVerification) -> ChainVerification | None:
    """The walk that verified the entry a walk from a checkpoint started after (the newest one
    before it that reached that far; the verifications are one row a day)."""
    return (
        ChainVerification.objects.filter(
            ok=True, last_entry_id__gte=verification.from_entry_id, at__lte=verification.at
        )
        .exclude(pk=verification.pk)
        .order_by("-at", "-id")
        .first()
    )


def chain_health(*, now: datetime) -> ChainHealth:
    recent = _recent()
    verification = ChainVerification.objects.order_by("-at", "-id").first()
    checkpoint = ChainCheckpoint.objects.order_by("-at", "-id").first()
    # Two reads of the primary key's ends (one MIN and MAX together is a scan on SQLite).
    first_id = AuditEntry.objects.order_by("id").values_list("id", flat=True).first()
    last_id = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()

    ok = verification is not None and verification.ok
    # A verification recorded before it kept its last entry (migration 0010) says nothing about
    # where it ended: counted as verifying nothing, which errs towards amber.
    verified_through = verification.last_entry_id if ok else None
    unverified = Tail.after(verified_through)
    witnessed_through = checkpoint.last_entry_id if checkpoint else None
    unwitnessed = Tail.after(witnessed_through)

    total, total_more = None, unwitnessed.more
    if checkpoint is None:
        total = unwitnessed.count  # every entry is after "no checkpoint"
    elif not AuditEntry.objects.filter(
        id__gt=witnessed_through or 0, action=Action.AUDIT_PURGED
    ).exists():
        # A purge written since the checkpoint deleted entries it counted; the next checkpoint
        # counts again. (A purge entry just before the checkpoint whose deleting went on after
        # it is missed: a window of seconds, once a month.)
        total = checkpoint.entries + unwitnessed.count

    verified_checkpoint = _verified_checkpoint(verification) if ok else None
    reaches_recent = verified_checkpoint is not None and now - verified_checkpoint.at <= recent
    verification_stale = ok and now - verification.at > timedelta(
        hours=settings.AUDIT_VERIFY_WARN_AFTER_HOURS
    )
    checkpoint_stale = checkpoint is None or now - checkpoint.at > recent
    verified_prefix = ok and unverified.count > 0 and not reaches_recent

    if verification is not None and not verification.ok:
        colour = Colour.RED
    elif ok and reaches_recent and not verification_stale and not checkpoint_stale:
        colour = Colour.GREEN
    else:
        colour = Colour.AMBER
    return ChainHealth(
        colour=colour,
        verification=verification,
        checkpoint=checkpoint,
        verified_checkpoint=verified_checkpoint,
        first_id=first_id,
        last_id=last_id,
        unverified=unverified,
        unwitnessed=unwitnessed,
        total=total,
        total_more=total_more,
        never_verified=verification is None,
        verification_stale=verification_stale,
        verified_prefix=verified_prefix,
        checkpoint_stale=checkpoint_stale,
        recent=recent,
        earlier_walk=_earlier_walk(verification) if ok and verification.from_entry_id else None,
    )
