"""One access helper per resource. Views and consumers call these, never copy them."""

from __future__ import annotations

import uuid
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from exams.models import Candidate, Event, Exam, ExamSession

PROCTOR_GROUP = "Proctor"
REVIEWER_GROUP = "Reviewer"


class TokenRefused(Exception):
    """An invitation token that is unknown or expired. ``reason`` is shown to the candidate."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _in_group(user: AbstractBaseUser | AnonymousUser, group: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=group).exists()


def is_proctor(user) -> bool:
    return _in_group(user, PROCTOR_GROUP)


def is_reviewer(user) -> bool:
    return _in_group(user, REVIEWER_GROUP)


def staff_session_current(user, session_key: str | None) -> bool:
    """Whether the browser session ``session_key`` still signs ``user`` in, as
    Django's own ``get_user`` decides it on every request: the session exists,
    names this user, and carries the hash of their current password (or of a
    ``SECRET_KEY_FALLBACKS`` key). A password change (by the user elsewhere, or
    by an administrator) ends every other session; a long-lived socket opened
    with one of them ends with it. The session is read again from its store:
    ``update_session_auth_hash`` keeps the browser that changed the password
    signed in, and its sockets with it."""
    if not session_key:
        return False
    stored = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if str(stored.get(SESSION_KEY, "")) != str(user.pk):
        return False
    held = stored.get(HASH_SESSION_KEY) or ""
    if not held:
        return False
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(held, current) for current in hashes)


def exams_for_proctor(user):
    if not is_proctor(user):
        return Exam.objects.none()
    if user.is_superuser:
        return Exam.objects.all()
    return Exam.objects.filter(proctors=user)


def exams_for_reviewer(user):
    """Reviewers see the exams they are assigned to (``Exam.reviewers``);
    superusers see every exam, as with proctors."""
    if not is_reviewer(user):
        return Exam.objects.none()
    if user.is_superuser:
        return Exam.objects.all()
    return Exam.objects.filter(reviewers=user)


def _parse_uuid(value) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404("not found") from None


def get_exam_for_proctor(user, code) -> Exam:
    """The exam, if ``user`` proctors it. Others get 404 (not 403) so codes do not leak."""
    if not is_proctor(user):
        raise PermissionDenied("proctors only")
    return get_object_or_404(exams_for_proctor(user), code=_parse_uuid(code))


def get_session_for_proctor(user, public_id) -> ExamSession:
    if not is_proctor(user):
        raise PermissionDenied("proctors only")
    qs = ExamSession.objects.select_related("candidate__exam")
    if not user.is_superuser:
        qs = qs.filter(candidate__exam__proctors=user)
    return get_object_or_404(qs, public_id=_parse_uuid(public_id))


def get_event_for_proctor(user, public_id) -> Event:
    """An alert of an exam ``user`` proctors; others get 404."""
    if not is_proctor(user):
        raise PermissionDenied("proctors only")
    qs = Event.objects.select_related("session__candidate__exam")
    if not user.is_superuser:
        qs = qs.filter(session__candidate__exam__proctors=user)
    return get_object_or_404(qs, public_id=_parse_uuid(public_id))


def get_exam_for_reviewer(user, code) -> Exam:
    """The exam, if ``user`` reviews it. Other reviewers get 404, like proctors."""
    if not is_reviewer(user):
        raise PermissionDenied("reviewers only")
    return get_object_or_404(exams_for_reviewer(user), code=_parse_uuid(code))


def get_session_for_reviewer(user, public_id) -> ExamSession:
    if not is_reviewer(user):
        raise PermissionDenied("reviewers only")
    qs = ExamSession.objects.select_related("candidate__exam")
    if not user.is_superuser:
        qs = qs.filter(candidate__exam__reviewers=user)
    return get_object_or_404(qs, public_id=_parse_uuid(public_id))


def reviews_exam(user, exam: Exam) -> bool:
    """``user`` may decide this exam's flags: a reviewer assigned to it, or a superuser."""
    return is_reviewer(user) and (user.is_superuser or exam.reviewers.filter(pk=user.pk).exists())


def get_event_for_staff(user, public_id) -> Event:
    """Evidence is visible to the exam's reviewers and to its proctors."""
    if not (is_reviewer(user) or is_proctor(user)):
        raise PermissionDenied("staff only")
    event = get_object_or_404(
        Event.objects.select_related("session__candidate__exam"), public_id=_parse_uuid(public_id)
    )
    exam = event.session.exam
    if user.is_superuser or reviews_exam(user, exam):
        return event
    if is_proctor(user) and exam.proctors.filter(pk=user.pk).exists():
        return event
    raise Http404("no such event")


def get_event_for_reviewer(user, public_id) -> Event:
    """An event whose review ``user`` may decide: one of an exam they review."""
    if not is_reviewer(user):
        raise PermissionDenied("reviewers only")
    event = get_object_or_404(
        Event.objects.select_related("session__candidate__exam"), public_id=_parse_uuid(public_id)
    )
    if reviews_exam(user, event.session.exam):
        return event
    raise Http404("no such event")


def get_candidate_for_token(token: str) -> Candidate:
    """The candidate an invitation token names, or TokenRefused with a reason to show."""
    if not token or len(token) > 64:
        raise TokenRefused("This exam link is not valid. Check that you copied all of it.", "unknown_token")
    try:
        candidate = Candidate.objects.select_related("exam").get(token=token)
    except Candidate.DoesNotExist:
        raise TokenRefused(
            "This exam link is not valid. Check that you copied all of it.", "unknown_token"
        ) from None
    if not candidate.token_valid(timezone.now()):
        raise TokenRefused("This exam has closed, so its link no longer works.", "expired_token")
    return candidate
