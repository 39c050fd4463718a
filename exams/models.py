"""Exams, candidates, attempts and what was flagged in them."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from detection.core import EVENT_TYPES, CheckConfig
from exams.storage import clip_upload_to, evidence_upload_to, reference_upload_to


def _default_checks() -> dict:
    return CheckConfig().to_dict()


# What each field of ``Exam.checks`` may hold: a list of names, or a number in a range.
CHECK_RANGES: dict[str, tuple[float, float]] = {
    "identity_threshold": (0.0, 1.0),  # a face-encoding distance: 0.6 is already loose
    "yaw_threshold": (1.0, 90.0),
    "pitch_threshold": (1.0, 90.0),
    "object_min_score": (0.0, 1.0),
    "looking_away_seconds": (0.5, 600.0),
}
CHECK_LISTS = ("enabled", "prohibited_labels")


def validate_checks(value) -> None:
    """Refuse a checks config that would make every analysis of the exam fail
    (or silently run with a value nobody meant): unknown keys, wrong types,
    thresholds out of range. One message per bad key."""
    if not isinstance(value, dict):
        raise ValidationError('Checks must be a JSON object, such as {"identity_threshold": 0.5}.')
    errors = []
    for key, item in value.items():
        if key in CHECK_LISTS:
            if not isinstance(item, list) or not all(isinstance(v, str) for v in item):
                errors.append(f"{key} must be a list of names.")
        elif key in CHECK_RANGES:
            low, high = CHECK_RANGES[key]
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                errors.append(f"{key} must be a number, not {item!r}.")
            elif not low <= item <= high:
                errors.append(f"{key} must be between {low:g} and {high:g}, not {item:g}.")
        else:
            known = ", ".join([*CHECK_LISTS, *CHECK_RANGES])
            errors.append(f"Unknown key {key!r}; the keys are: {known}.")
    if not errors:
        try:
            CheckConfig.from_dict(value)
        except (TypeError, ValueError) as exc:
            errors.append(f"{exc}.")
    if errors:
        raise ValidationError(errors)


def _default_opens() -> datetime:
    return timezone.now()


def _default_closes() -> datetime:
    return timezone.now() + timedelta(days=7)


def _new_token() -> str:
    return secrets.token_urlsafe(32)


class Exam(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    external_url = models.URLField(blank=True, help_text="The LMS quiz the candidate takes, if any.")
    opens_at = models.DateTimeField(default=_default_opens)
    closes_at = models.DateTimeField(default=_default_closes)
    duration_minutes = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    frame_interval = models.FloatField(
        default=2.0,
        validators=[MinValueValidator(0.5), MaxValueValidator(30)],
        help_text="Seconds between webcam frames.",
    )
    checks = models.JSONField(
        default=_default_checks, validators=[validate_checks], help_text="Enabled checks and thresholds."
    )
    retention_days = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    proctors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="proctored_exams")
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="reviewed_exams",
        help_text="Reviewers who may read this exam's reports and decide its flags.",
    )
    requires_fullscreen = models.BooleanField(
        default=False, help_text="The exam page asks the candidate to go fullscreen and reports leaving it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    purged_at = models.DateTimeField(
        null=True, blank=True, help_text="When evidence and photos were deleted."
    )

    class Meta:
        ordering = ["-opens_at"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        super().clean()
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValidationError({"closes_at": "The exam must close after it opens."})

    def check_config(self) -> CheckConfig:
        return CheckConfig.from_dict(self.checks)

    def is_open(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.opens_at <= now <= self.closes_at

    def purge_after(self) -> datetime:
        """Evidence and reference photos are deleted after this moment."""
        return self.closes_at + timedelta(days=self.retention_days)


class Candidate(models.Model):
    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="candidates")
    name = models.CharField(max_length=200)
    email = models.EmailField()
    external_id = models.CharField(max_length=100, blank=True)
    token = models.CharField(max_length=64, unique=True, default=_new_token, editable=False)
    reference_encodings = models.JSONField(default=list, blank=True)
    reference_photo = models.FileField(upload_to=reference_upload_to, blank=True)
    reference_unverified = models.BooleanField(
        default=False, help_text="The reference was captured at the exam, not taken from the roster."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    erased_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When this candidate's personal data was erased."
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["exam", "email"], name="unique_candidate_email")]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def token_valid(self, now: datetime | None = None) -> bool:
        """The invitation expires with the exam window, except for an attempt
        whose extra time runs past the close: its link works until its deadline."""
        now = now or timezone.now()
        if now <= self.exam.closes_at:
            return True
        session = ExamSession.objects.filter(candidate=self).first()
        if session is None:
            return False
        session.candidate = self  # its deadline reads this candidate's exam
        return session.deadline is not None and now <= session.deadline

    def link_path(self) -> str:
        return reverse("take_consent", args=[self.token])


class IllegalTransition(Exception):
    pass


class ExamSessionQuerySet(models.QuerySet):
    def locked(self, pk: int) -> ExamSession:
        """The session, reloaded with its candidate and exam, its row locked
        until the surrounding transaction ends. Only the session's own row is
        locked (``of=("self",)``): the candidate and exam rows stay free."""
        return self.select_for_update(of=("self",)).select_related("candidate__exam").get(pk=pk)

    def locked_row(self, session: ExamSession) -> ExamSession:
        """``session``'s own row reloaded and locked as ``locked`` does, its
        candidate and exam kept from ``session`` instead of read again: for a
        hot path that loaded them a moment before (half of its write's cost)."""
        row = self.select_for_update().get(pk=session.pk)
        row.candidate = session.candidate
        return row


class VerificationStatus(models.TextChoices):
    """Where the identity check before the exam stands; the message beside it says it in words."""

    NONE = "", "Not started"
    PENDING = "pending", "Checking"
    BAD_IMAGE = "bad_image", "Picture unreadable"
    NO_FACE = "no_face", "No face found"
    MULTIPLE_FACES = "multiple_faces", "Several faces"
    MISMATCH = "mismatch", "Did not match"
    MATCHED = "matched", "Matched"
    MISMATCH_FLAGGED = "mismatch_flagged", "Did not match; flagged for a human"
    CAPTURED_REFERENCE = "captured_reference", "Reference captured (unverified)"


class ExamSession(models.Model):
    """One attempt. Its state only changes through the transition methods."""

    class State(models.TextChoices):
        INVITED = "invited"
        CONSENTED = "consented"
        VERIFIED = "verified"
        IN_PROGRESS = "in_progress", "In progress"
        SUBMITTED = "submitted"
        TERMINATED = "terminated"
        CLEARED = "cleared"
        VIOLATION = "violation"

    TRANSITIONS: dict[str, tuple[str, ...]] = {
        State.CONSENTED: (State.INVITED,),
        State.VERIFIED: (State.CONSENTED,),
        State.IN_PROGRESS: (State.VERIFIED,),
        State.SUBMITTED: (State.IN_PROGRESS,),
        State.TERMINATED: (State.INVITED, State.CONSENTED, State.VERIFIED, State.IN_PROGRESS),
        State.CLEARED: (State.SUBMITTED, State.TERMINATED),
        State.VIOLATION: (State.SUBMITTED, State.TERMINATED),
    }
    FINISHED = (State.SUBMITTED, State.TERMINATED, State.CLEARED, State.VIOLATION)
    # The end_reason of an attempt submitted automatically at its deadline.
    TIME_UP = "time up"

    objects = ExamSessionQuerySet.as_manager()

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    candidate = models.OneToOneField(Candidate, on_delete=models.CASCADE, related_name="session")
    state = models.CharField(max_length=20, choices=State.choices, default=State.INVITED)
    consented_at = models.DateTimeField(null=True, blank=True)
    consent_version = models.CharField(max_length=40, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    paused = models.BooleanField(default=False)
    extra_minutes = models.PositiveIntegerField(
        default=0, help_text="Extra time granted to this candidate; it moves their deadline."
    )

    # Identity check before the exam.
    verification_status = models.CharField(
        max_length=30, blank=True, choices=VerificationStatus.choices, default=VerificationStatus.NONE
    )
    verification_message = models.CharField(max_length=300, blank=True)
    verification_attempts = models.PositiveIntegerField(default=0)
    verification_distance = models.FloatField(null=True, blank=True)

    # Live pipeline bookkeeping.
    analysis_state = models.JSONField(default=dict, blank=True)
    last_frame_seq = models.BigIntegerField(default=0)
    last_frame_at = models.DateTimeField(null=True, blank=True)
    frames_analysed = models.PositiveIntegerField(default=0)
    last_faces = models.IntegerField(null=True, blank=True)
    connection_channel = models.CharField(max_length=200, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    frames_due_from = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the page was last expected to start sending frames (it connected, or the exam "
        "resumed): a silent camera is counted from the later of this and the last analysed frame.",
    )

    class Meta:
        ordering = ["candidate__name"]

    def __str__(self) -> str:
        return f"{self.candidate.name}: {self.state}"

    @property
    def exam(self) -> Exam:
        return self.candidate.exam

    def can_become(self, target: str) -> bool:
        return self.state in self.TRANSITIONS.get(target, ())

    def _move(self, target: str) -> None:
        if not self.can_become(target):
            raise IllegalTransition(f"cannot go from {self.state} to {target}")
        self.state = target

    def consent(self, *, version: str, now: datetime) -> None:
        self._move(self.State.CONSENTED)
        self.consented_at = now
        self.consent_version = version

    def verify(self, *, now: datetime) -> None:
        self._move(self.State.VERIFIED)
        self.verified_at = now

    def start(self, *, now: datetime) -> None:
        self._move(self.State.IN_PROGRESS)
        self.started_at = now

    def submit(self, *, now: datetime) -> None:
        self._move(self.State.SUBMITTED)
        self.finished_at = now

    def terminate(self, *, now: datetime, reason: str) -> None:
        self._move(self.State.TERMINATED)
        self.finished_at = now
        self.end_reason = reason[:200]

    def clear(self, *, now: datetime) -> None:
        self._move(self.State.CLEARED)
        self.reviewed_at = now

    def mark_violation(self, *, now: datetime) -> None:
        self._move(self.State.VIOLATION)
        self.reviewed_at = now

    @property
    def deadline(self) -> datetime | None:
        """When this attempt ends on its own: the exam's duration after the
        start, but no later than the window's close; extra time moves both."""
        if self.started_at is None:
            return None
        exam = self.exam
        end = min(self.started_at + timedelta(minutes=exam.duration_minutes), exam.closes_at)
        return end + timedelta(minutes=self.extra_minutes)

    @property
    def how_it_ended(self) -> str:
        """How the attempt ended, in words for reports; "" while it has not."""
        if self.finished_at is None:
            return ""
        if self.end_reason == self.TIME_UP:
            return "Time up: submitted automatically at the deadline"
        if self.end_reason:
            return f"Ended early: {self.end_reason}"
        return "Submitted by the candidate"

    @property
    def is_live(self) -> bool:
        return self.state == self.State.IN_PROGRESS

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED


# What pages call each kind of event: the grid's tiles and feed, the timelines,
# the reviewer's workbench. Lower case, as they read inside a sentence or on a pill.
EVENT_LABELS = {
    "no_face": "no face",
    "multiple_faces": "multiple faces",
    "identity_mismatch": "identity mismatch",
    "prohibited_object": "prohibited object",
    "looking_away": "looking away",
    "camera_blocked": "camera blocked",
    "tab_hidden": "left the exam tab",
    "fullscreen_exit": "left fullscreen",
    "copy_paste": "copy or paste",
    "connection_lost": "connection lost",
    "duplicate_session": "second tab or device",
    "camera_silent": "no picture from the camera",
}
# The one source of those words: the field's choices (get_type_display, admin, forms).
EVENT_TYPE_CHOICES = [(t, EVENT_LABELS.get(t, t.replace("_", " "))) for t in EVENT_TYPES]


class Event(models.Model):
    class Review(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        DISMISSED = "dismissed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(ExamSession, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=30, choices=EVENT_TYPE_CHOICES)
    key = models.CharField(max_length=80, help_text="Separates concurrent conditions of one type.")
    severity = models.CharField(max_length=10, choices=[(s, s) for s in ("low", "medium", "high")])
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    is_open = models.BooleanField(default=True)
    confidence = models.FloatField(default=1.0)
    details = models.JSONField(default=dict, blank=True)
    evidence = models.FileField(upload_to=evidence_upload_to, blank=True)
    review_status = models.CharField(max_length=10, choices=Review.choices, default=Review.PENDING)
    acknowledged_at = models.DateTimeField(
        null=True, blank=True, help_text="When a proctor marked the live alert as handled."
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The proctor who handled the live alert.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["session", "key", "is_open"])]

    @staticmethod
    def label_of(event_type: str) -> str:
        return dict(EVENT_TYPE_CHOICES).get(event_type, event_type.replace("_", " "))

    @property
    def label(self) -> str:
        return self.label_of(self.type)

    def __str__(self) -> str:
        return f"{self.type} {self.started_at:%H:%M:%S}"

    def acknowledge(self, *, by, at: datetime) -> bool:
        """A proctor handled the alert. The first acknowledgement stands; False if
        it was already handled."""
        if self.acknowledged_at is not None:
            return False
        self.acknowledged_at, self.acknowledged_by = at, by
        self.save(update_fields=["acknowledged_at", "acknowledged_by"])
        return True

    def close(self, at: datetime) -> None:
        """End the event at ``at`` (never before it started) and save it."""
        self.ended_at = max(at, self.started_at)
        self.is_open = False
        self.save(update_fields=["ended_at", "is_open"])

    @property
    def duration_seconds(self) -> float:
        return max(0.0, (self.ended_at - self.started_at).total_seconds())


class EventFrame(models.Model):
    """One picture of an event's clip: the frames just before the event opened,
    the frame that opened it, and the next few after it, as the candidate's
    browser sent them (see exams/clips.py)."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="frames")
    taken_at = models.DateTimeField()
    image = models.FileField(upload_to=clip_upload_to)

    class Meta:
        ordering = ["taken_at", "id"]

    def __str__(self) -> str:
        return f"{self.event} frame {self.taken_at:%H:%M:%S.%f}"


class ReviewDecision(models.Model):
    class Decision(models.TextChoices):
        CONFIRM = "confirm"
        DISMISS = "dismiss"
        CLEAR = "clear"
        VIOLATION = "violation"

    session = models.ForeignKey(ExamSession, on_delete=models.CASCADE, related_name="decisions")
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, null=True, blank=True, related_name="decisions"
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]


class ReviewOutcome(models.TextChoices):
    """What a reviewer's decision on a whole session led to."""

    CLEARED = "cleared", "Cleared"
    VIOLATION = "violation", "Violation"
    AWAITING_SECOND_REVIEWER = "awaiting_second_reviewer", "Awaiting a second reviewer"


class DecisionState(models.TextChoices):
    """Where a session stands with its reviewers, as the lists and reports show it."""

    NOT_FINISHED = "not_finished", "Not finished"
    AWAITING_REVIEW = "awaiting_review", "Awaiting review"
    AWAITING_SECOND_REVIEWER = "awaiting_second_reviewer", "Awaiting second reviewer"
    CLEARED = "cleared", "Cleared"
    VIOLATION = "violation", "Violation"

    @classmethod
    def of(cls, state: str, violation_voters: int) -> DecisionState:
        """From the session's state and how many different reviewers have voted
        "violation" (one vote of the two needed is "awaiting second reviewer")."""
        if state == ExamSession.State.CLEARED:
            return cls.CLEARED
        if state == ExamSession.State.VIOLATION:
            return cls.VIOLATION
        if state not in (ExamSession.State.SUBMITTED, ExamSession.State.TERMINATED):
            return cls.NOT_FINISHED
        return cls.AWAITING_SECOND_REVIEWER if violation_voters else cls.AWAITING_REVIEW


class Message(models.Model):
    """One line of the conversation between a candidate and the proctors: a
    proctor's message or warning, or the candidate's own message."""

    MAX_LENGTH = 500

    class Sender(models.TextChoices):
        PROCTOR = "proctor"
        CANDIDATE = "candidate"

    class Kind(models.TextChoices):
        MESSAGE = "message"
        WARNING = "warn"

    session = models.ForeignKey(ExamSession, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=10, choices=Sender.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MESSAGE)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="The proctor who wrote it; empty for the candidate.",
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.sender}: {self.text[:40]}"

    @property
    def author_name(self) -> str:
        return self.author.get_username() if self.author_id else ""

    @property
    def speaker(self) -> str:
        """Who said it, as staff see it: the candidate's name, or "Proctor <username>",
        marked if a warning."""
        if self.sender == self.Sender.CANDIDATE:
            return self.session.candidate.name
        # "Proctor alice"; a proctor whose user name is just "proctor" (the demo's)
        # reads "Proctor", not "Proctor proctor".
        name = self.author_name
        label = f"Proctor {name}" if name and name.casefold() != "proctor" else "Proctor"
        return f"{label} (warning)" if self.kind == self.Kind.WARNING else label

    @property
    def speaker_for_candidate(self) -> str:
        """Who said it, as the candidate sees it: "You", or "Proctor" without the
        username (a candidate is not told which proctor), marked if a warning."""
        if self.sender == self.Sender.CANDIDATE:
            return "You"
        return "Proctor (warning)" if self.kind == self.Kind.WARNING else "Proctor"


class AuditEntryChanged(Exception):
    """The audit log is append-only: a row is never edited or deleted."""


class AuditEntry(models.Model):
    """Who did what. Staff actions carry the user; candidate actions a label.

    Append-only. A row outlives what it describes: deleting an exam or a
    session only empties ``exam``/``session`` (SET_NULL), and
    ``subject_label`` still says what the row was about. ``save()`` refuses
    to change a stored row and ``delete()`` refuses outright; on PostgreSQL a
    trigger (migration 0007) refuses any UPDATE but that emptying, and any
    DELETE, whoever runs the SQL."""

    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=60)
    exam = models.ForeignKey(Exam, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit")
    session = models.ForeignKey(
        ExamSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit"
    )
    subject_label = models.CharField(
        max_length=300,
        blank=True,
        help_text="What the entry was about, kept after the exam or session is deleted.",
    )
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise AuditEntryChanged("audit entries are append-only; this one is already stored")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEntryChanged("audit entries are append-only and are never deleted")
