"""The candidate's pages. A candidate is identified by the invitation token alone."""

from __future__ import annotations

import random
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from exams import limits, services
from exams.access import TokenRefused, get_candidate_for_token
from exams.analysis import intake
from exams.models import ExamSession, VerificationStatus

State = ExamSession.State


def candidate_view(view):
    """Resolve the token to the candidate's session, or show why the link does not work.

    Limits (exams.limits): a refused token counts against its address, and once
    the address is over TAKE_REFUSALS_PER_MINUTE its refused tokens get 429; a
    valid token counts against its own budget only. So nothing another person at
    the same address (an exam hall behind one NAT) does refuses a valid link."""

    @wraps(view)
    def wrapper(request: HttpRequest, token: str, *args, **kwargs) -> HttpResponse:
        ip = limits.request_ip(request) or limits.UNKNOWN  # read first: the process logs its first one
        try:
            candidate = get_candidate_for_token(token)
        except TokenRefused as exc:
            if limits.token_refused(ip):
                return _refused(request, "too_many_requests", TOO_MANY_REFUSED, status=429)
            services.audit_anonymous_refusal(action="link_refused", reason=exc.code)
            return _refused(request, exc.code, exc.reason, status=410 if exc.code == "expired_token" else 404)
        if limits.token_over_budget(candidate.pk):
            return _refused(request, "too_many_requests", TOO_MANY, status=429)
        session = services.session_for_candidate(candidate)
        deadline = session.deadline
        if session.is_live and deadline is not None and deadline <= timezone.now():
            # Time ran out while nobody was looking (the beat task may not have run yet).
            services.session_time_up(session=session)
            session.refresh_from_db()
        return view(request, session, *args, **kwargs)

    return wrapper


TOO_MANY = "Too many requests for this exam link. Wait a minute, then open your exam link again."
TOO_MANY_REFUSED = (
    "Too many exam links that do not work came from your network. Check that you copied all of your "
    "link, wait a minute, then open it again."
)


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
                    "contact": settings.SUPPORT_CONTACT,
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
            "contact": settings.SUPPORT_CONTACT,
        },
    )


def _outside_window(
    request: HttpRequest, session: ExamSession, refused: services.OutsideWindow
) -> HttpResponse:
    """The page that says when the exam opens (or that it closed), in the candidate's time zone."""
    return render(
        request,
        "take/outside_window.html",
        {"session": session, "exam": session.exam, "message": refused.message, "early": refused.early},
        status=403,
    )


@require_POST
@candidate_view
def take_decline(request: HttpRequest, session: ExamSession) -> HttpResponse:
    """The candidate does not agree to be proctored: say what that means and whom to ask."""
    if session.state != State.INVITED:
        return redirect(_next_step(session), token=session.candidate.token)
    services.session_decline_consent(session=session, version=settings.CONSENT_POLICY_VERSION)
    return render(
        request,
        "take/declined.html",
        {"session": session, "exam": session.exam, "contact": settings.SUPPORT_CONTACT},
    )


# The system check times the download of this many bytes. Random bytes, so no
# proxy or browser can compress them; made once per process, not per request.
CHECK_DOWNLOAD_BYTES = 512 * 1024
_CHECK_PAYLOAD = random.Random(0).randbytes(CHECK_DOWNLOAD_BYTES)
# Pass marks, estimates rather than measurements: the page sends one 640x480
# JPEG (tens of KB) per frame interval, a fraction of 1 Mbit/s, which leaves
# room for the exam's own pages; a round trip over 600 ms makes the
# proctor's live view and the chat feel slow.
CHECK_MIN_MBPS = 1.0
CHECK_MAX_LATENCY_MS = 600


@candidate_view
def take_check(request: HttpRequest, session: ExamSession) -> HttpResponse:
    """The system check a candidate can run any time before the exam. It reads
    nothing the candidate sends and changes nothing: no state, no audit line."""
    return render(
        request,
        "take/check.html",
        {
            "session": session,
            "exam": session.exam,
            "download_bytes": CHECK_DOWNLOAD_BYTES,
            "min_mbps": CHECK_MIN_MBPS,
            "max_latency_ms": CHECK_MAX_LATENCY_MS,
        },
    )


@require_http_methods(["GET", "HEAD"])
@candidate_view
def take_check_download(request: HttpRequest, session: ExamSession) -> HttpResponse:
    response = HttpResponse(_CHECK_PAYLOAD, content_type="application/octet-stream")
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@candidate_view
def take_check_upload(request: HttpRequest, session: ExamSession) -> HttpResponse:
    """Receives (and drops) the check's upload: pictures go up, so upload speed matters most."""
    if int(request.headers.get("Content-Length") or 0) > CHECK_DOWNLOAD_BYTES:
        return HttpResponse(status=413)
    request.read()  # all of it, so the page's timing covers the whole upload
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response


@candidate_view
def take_check_ping(request: HttpRequest, session: ExamSession) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response


@candidate_view
def take_verify(request: HttpRequest, session: ExamSession) -> HttpResponse:
    if session.state != State.CONSENTED:
        return redirect(_next_step(session), token=session.candidate.token)
    try:
        services.exam_window_check(exam=session.exam)
    except services.OutsideWindow as refused:
        return _outside_window(request, session, refused)
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
    try:
        services.exam_window_check(exam=session.exam)
    except services.OutsideWindow as refused:
        exam = session.exam
        return JsonResponse(
            {
                "error": "outside_window",
                "message": refused.message,
                "opens_at": exam.opens_at.isoformat(),
                "closes_at": exam.closes_at.isoformat(),
            },
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
    # candidate_view has just read the session: a hall polls this at once, so no second read.
    pending = session.verification_status == VerificationStatus.PENDING
    if pending and intake.verification_recover(session=session):  # never "pending" for good
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
        try:
            session = services.session_start(session=session)
        except services.OutsideWindow as refused:
            return _outside_window(request, session, refused)
    if session.state != State.IN_PROGRESS:
        return redirect(_next_step(session), token=session.candidate.token)
    response = render(
        request,
        "take/exam.html",
        {
            "session": session,
            "exam": session.exam,
            "chat": session.messages.all(),
            # The page counts down from the server's clock, not the candidate's:
            # it sends "now" along and the page keeps only the difference.
            "deadline": session.deadline,
            "server_now": timezone.now(),
        },
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
