"""The candidate's pages. A candidate is identified by the invitation token alone."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.core import is_ratelimited

from exams import services
from exams.access import TokenRefused, get_candidate_for_token
from exams.analysis import intake
from exams.models import ExamSession

State = ExamSession.State


def candidate_view(view):
    """Resolve the token to the candidate's session, or show why the link does not work."""

    @wraps(view)
    def wrapper(request: HttpRequest, token: str, *args, **kwargs) -> HttpResponse:
        if _over_the_limit(request):
            return _refused(request, "too_many_requests", TOO_MANY, status=429)
        try:
            candidate = get_candidate_for_token(token)
        except TokenRefused as exc:
            _limit(request, "take-refused", settings.TAKE_REFUSALS_PER_MINUTE, increment=True)
            services.audit_anonymous_refusal(action="link_refused", reason=exc.code)
            return _refused(request, exc.code, exc.reason, status=410 if exc.code == "expired_token" else 404)
        session = services.session_for_candidate(candidate)
        return view(request, session, *args, **kwargs)

    return wrapper


TOO_MANY = "Too many requests from your network. Wait a minute, then open your exam link again."


def _limit(request: HttpRequest, group: str, per_minute: int, *, increment: bool) -> bool:
    return is_ratelimited(request, group=group, key="ip", rate=f"{per_minute}/m", increment=increment)


def _over_the_limit(request: HttpRequest) -> bool:
    """Per client address (django-ratelimit): every candidate request counts against
    TAKE_REQUESTS_PER_MINUTE; once more than TAKE_REFUSALS_PER_MINUTE tokens were
    refused, the address gets no further lookups this minute."""
    if _limit(request, "take-refused", settings.TAKE_REFUSALS_PER_MINUTE, increment=False):
        return True
    return _limit(request, "take", settings.TAKE_REQUESTS_PER_MINUTE, increment=True)


def _refused(request: HttpRequest, code: str, reason: str, *, status: int) -> HttpResponse:
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"error": code, "message": reason}, status=status)
    return render(request, "take/refused.html", {"reason": reason}, status=status)


def _next_step(session: ExamSession) -> str:
    return {
        State.INVITED: "take_consent",
        State.CONSENTED: "take_verify",
        State.VERIFIED: "take_exam",
        State.IN_PROGRESS: "take_exam",
    }.get(session.state, "take_done")


@require_http_methods(["GET", "POST"])
@candidate_view
def take_consent(request: HttpRequest, session: ExamSession) -> HttpResponse:
    token = session.candidate.token
    if session.state != State.INVITED:
        return redirect(_next_step(session), token=token)
    exam = session.exam
    if request.method == "POST":
        if request.POST.get("agree") != "yes":
            return render(
                request,
                "take/consent.html",
                {
                    "session": session,
                    "exam": exam,
                    "error": "Tick the box to agree before you continue.",
                    "policy_version": settings.CONSENT_POLICY_VERSION,
                },
                status=400,
            )
        services.session_consent(session=session, version=settings.CONSENT_POLICY_VERSION)
        return redirect("take_verify", token=token)
    return render(
        request,
        "take/consent.html",
        {
            "session": session,
            "exam": exam,
            "policy_version": settings.CONSENT_POLICY_VERSION,
            "not_open": not exam.is_open(),
        },
    )


@candidate_view
def take_verify(request: HttpRequest, session: ExamSession) -> HttpResponse:
    if session.state != State.CONSENTED:
        return redirect(_next_step(session), token=session.candidate.token)
    return render(
        request,
        "take/verify.html",
        {
            "session": session,
            "exam": session.exam,
            "has_reference": bool(session.candidate.reference_encodings),
        },
    )


@require_POST
@candidate_view
def take_verify_photo(request: HttpRequest, session: ExamSession) -> JsonResponse:
    if session.state != State.CONSENTED:
        return JsonResponse(
            {"error": "wrong_state", "message": "Verification is already done.", "state": session.state},
            status=409,
        )
    body = request.body
    if not body:
        return JsonResponse({"error": "empty", "message": "No photo was sent."}, status=400)
    if len(body) > settings.FRAME_MAX_BYTES:
        return JsonResponse({"error": "too_large", "message": "The photo is too large."}, status=413)
    if not (body[:3] == b"\xff\xd8\xff" or body[:8] == b"\x89PNG\r\n\x1a\n"):
        return JsonResponse(
            {"error": "not_an_image", "message": "The photo must be a JPEG or PNG image."}, status=415
        )
    intake.submit(intake.VERIFY, session=session, data=body)
    return JsonResponse({"status": "pending", "message": "Checking your photo…"}, status=202)


@candidate_view
def take_verify_status(request: HttpRequest, session: ExamSession) -> JsonResponse:
    session.refresh_from_db()
    return JsonResponse(
        {
            "state": session.state,
            "status": session.verification_status,
            "message": session.verification_message,
            "attempts": session.verification_attempts,
        }
    )


@candidate_view
def take_exam(request: HttpRequest, session: ExamSession) -> HttpResponse:
    if session.state == State.VERIFIED:
        session = services.session_start(session=session)
    if session.state != State.IN_PROGRESS:
        return redirect(_next_step(session), token=session.candidate.token)
    response = render(
        request, "take/exam.html", {"session": session, "exam": session.exam, "chat": session.messages.all()}
    )
    lms = urlsplit(session.exam.external_url or "")
    if lms.scheme in ("http", "https") and lms.netloc:
        # The page frames the exam's questions from the LMS: that origin, and only it.
        # (What django-csp's csp_replace decorator sets, for a value known at run time.)
        response._csp_replace = {"frame-src": [f"{lms.scheme}://{lms.netloc}"]}
    return response


@require_POST
@candidate_view
def take_finish(request: HttpRequest, session: ExamSession) -> HttpResponse:
    services.session_submit(session=session)
    return redirect("take_done", token=session.candidate.token)


@candidate_view
def take_done(request: HttpRequest, session: ExamSession) -> HttpResponse:
    if not session.is_finished:
        return redirect(_next_step(session), token=session.candidate.token)
    return render(request, "take/done.html", {"session": session, "exam": session.exam})
