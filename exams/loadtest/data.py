"""The load test's own exam, candidates and proctor, written straight to the
server's database, and their removal.

Everything made here is marked twice so that removal takes exactly it: exams
by the title prefix ``[loadtest]`` with every candidate's email at
``@loadtest.invalid``, and proctor users by the ``loadtest-proctor-`` username
with an email at that domain (``.invalid`` is reserved, so no real person has
one). An exam whose title starts with the prefix but that has any other
candidate is left alone.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from exams import clips, live
from exams.access import PROCTOR_GROUP
from exams.analysis import intake
from exams.analysis.queue import BUSY_TTL_SECONDS, frame_queue
from exams.models import Candidate, Event, EventFrame, Exam, ExamSession

log = logging.getLogger(__name__)

TITLE_PREFIX = "[loadtest]"
EMAIL_DOMAIN = "loadtest.invalid"
USERNAME_PREFIX = "loadtest-proctor-"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass(frozen=True)
class LoadCandidate:
    index: int
    name: str
    token: str
    session_id: str


@dataclass(frozen=True)
class LoadExam:
    code: str
    title: str
    candidates: tuple[LoadCandidate, ...]
    proctor_username: str
    session_cookie: str  # "sessionid=<key>", signed in as the proctor

    @property
    def session_ids(self) -> list[str]:
        return [c.session_id for c in self.candidates]


def _proctor_session(user) -> str:
    """A server-side Django session signed in as ``user``, as a Cookie header value."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = MODEL_BACKEND
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.set_expiry(timedelta(days=1))
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def load_exam_create(
    *, candidates: int, interval: float, encoding: list[float], label: str = "", in_progress: bool = True
) -> LoadExam:
    """An open exam with ``candidates`` candidates whose attempts are already in
    progress (consented, verified and started through the state machine), or
    only invited (``in_progress=False``: the walk-in takes them through the
    pages), each with ``encoding`` as their reference face, and a proctor
    assigned to it."""
    if candidates < 1:
        raise ValueError("at least one candidate")
    now = timezone.now()
    User = get_user_model()
    with transaction.atomic():
        exam = Exam.objects.create(
            title=f"{TITLE_PREFIX} {candidates} candidates {label}".strip()[:200],
            instructions="Made by manage.py loadtest; manage.py loadtest --cleanup removes it.",
            opens_at=now - timedelta(minutes=5),
            closes_at=now + timedelta(days=1),
            frame_interval=interval,
            retention_days=1,
        )
        username = f"{USERNAME_PREFIX}{exam.code.hex[:12]}"
        proctor = User.objects.create(username=username, email=f"{username}@{EMAIL_DOMAIN}")
        proctor.set_unusable_password()
        proctor.save(update_fields=["password"])
        proctor.groups.add(Group.objects.get_or_create(name=PROCTOR_GROUP)[0])
        exam.proctors.add(proctor)
        rows = Candidate.objects.bulk_create(
            Candidate(
                exam=exam,
                name=f"Load candidate {i + 1:03d}",
                email=f"candidate-{i + 1:03d}@{EMAIL_DOMAIN}",
                reference_encodings=[encoding],
            )
            for i in range(candidates)
        )
        sessions = []
        for candidate in rows:
            session = ExamSession(candidate=candidate)
            if in_progress:
                session.consent(version=settings.CONSENT_POLICY_VERSION, now=now)
                session.verify(now=now)
                session.start(now=now)
                session.verification_status = "matched"
            sessions.append(session)
        ExamSession.objects.bulk_create(sessions)
        cookie = _proctor_session(proctor)
    return LoadExam(
        code=str(exam.code),
        title=exam.title,
        candidates=tuple(
            LoadCandidate(i, c.name, c.token, str(s.public_id))
            for i, (c, s) in enumerate(zip(rows, sessions, strict=True))
        ),
        proctor_username=username,
        session_cookie=cookie,
    )


def load_frames_analysed(load: LoadExam) -> int:
    """Frames the server analysed for the load exam's sessions so far."""
    total = ExamSession.objects.filter(candidate__exam__code=load.code).aggregate(n=Sum("frames_analysed"))
    return int(total["n"] or 0)


def load_states(load: LoadExam) -> dict[str, int]:
    """How many of the load exam's sessions are in each state, by the database."""
    rows = ExamSession.objects.filter(candidate__exam__code=load.code).values_list("state", flat=True)
    return dict(Counter(rows))


def load_queue_idle(load: LoadExam) -> bool:
    """No frame of the load exam is waiting for, or in, analysis."""
    queue = frame_queue()
    return all(queue.idle(intake.FRAME, sid) for sid in load.session_ids)


def _load_exams(code: str | None):
    exams = Exam.objects.filter(title__startswith=TITLE_PREFIX)
    if code is not None:
        exams = exams.filter(code=code)
    foreign = Candidate.objects.exclude(email__endswith=f"@{EMAIL_DOMAIN}").values("exam_id")
    skipped = exams.filter(pk__in=foreign)
    for exam in skipped:
        log.warning(
            "not removing exam %s (%r): it has candidates outside @%s", exam.code, exam.title, EMAIL_DOMAIN
        )
    return exams.exclude(pk__in=foreign)


def _load_users(code: str | None):
    users = get_user_model().objects.filter(
        username__startswith=USERNAME_PREFIX, email__endswith=f"@{EMAIL_DOMAIN}"
    )
    if code is not None:
        users = users.filter(username=f"{USERNAME_PREFIX}{code.replace('-', '')[:12]}")
    return users


def load_data_remove(*, code: str | None = None) -> dict[str, int]:
    """Remove the load test's data: the exam with ``code``, or every load-test
    exam when ``code`` is None, with their candidates, sessions, events, evidence
    and reference files, waiting frames and thumbnails, and the load-test
    proctor users with their sign-in sessions. Returns what was removed, by kind."""
    exams = list(_load_exams(code))
    # End the attempts first, so the workers stop analysing them, and give an
    # analysis already under way (behind an overloaded run's backlog) time to
    # store its result before the rows it writes to go away.
    ExamSession.objects.filter(candidate__exam__in=exams).update(state=ExamSession.State.TERMINATED)
    sessions = list(ExamSession.objects.filter(candidate__exam__in=exams).values_list("public_id", flat=True))
    deadline = time.monotonic() + BUSY_TTL_SECONDS
    while time.monotonic() < deadline and not all(frame_queue().idle(intake.FRAME, str(s)) for s in sessions):
        time.sleep(0.5)
    events = Event.objects.filter(session__candidate__exam__in=exams)
    files = 0
    for event in events.exclude(evidence=""):
        event.evidence.delete(save=False)
        files += 1
    for frame in EventFrame.objects.filter(event__in=events):
        frame.image.delete(save=False)
        files += 1
    for candidate in Candidate.objects.filter(exam__in=exams).exclude(reference_photo=""):
        candidate.reference_photo.delete(save=False)
        files += 1
    queue = frame_queue()
    for public_id in sessions:
        for kind in (intake.FRAME, intake.VERIFY):
            queue.forget(kind, str(public_id))
    live.pictures_forget([str(public_id) for public_id in sessions])
    clips.clips_forget([str(public_id) for public_id in sessions])
    counts = {
        "exams": len(exams),
        "candidates": Candidate.objects.filter(exam__in=exams).count(),
        "sessions": len(sessions),
        "events": events.count(),
        "evidence_files": files,
    }
    users = list(_load_users(code))
    user_ids = {str(user.pk) for user in users}
    signed_in = [s.session_key for s in Session.objects.all() if s.get_decoded().get(SESSION_KEY) in user_ids]
    with transaction.atomic():
        Exam.objects.filter(pk__in=[e.pk for e in exams]).delete()
        counts["django_sessions"] = Session.objects.filter(session_key__in=signed_in).delete()[0]
        get_user_model().objects.filter(pk__in=[u.pk for u in users]).delete()
        counts["users"] = len(users)
    return counts
