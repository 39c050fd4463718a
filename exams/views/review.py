"""The reviewers' pages: sessions by flags, one session's report, decisions, exports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from exams import reports, services
from exams.access import (
    exams_for_reviewer,
    get_event_for_reviewer,
    get_event_for_staff,
    get_exam_for_reviewer,
    get_session_for_reviewer,
    is_reviewer,
)
from exams.models import Event, ExamSession, IllegalTransition, ReviewOutcome
from exams.risk import risk_of

DISMISSED = Event.Review.DISMISSED


@login_required
def review_index(request: HttpRequest) -> HttpResponse:
    if not is_reviewer(request.user):
        raise PermissionDenied("reviewers only")
    exams = exams_for_reviewer(request.user).annotate(sessions=Count("candidates__session"))
    return render(request, "review/index.html", {"exams": exams})


@login_required
def review_exam(request: HttpRequest, code) -> HttpResponse:
    exam = get_exam_for_reviewer(request.user, code)
    sessions = (
        ExamSession.objects.filter(candidate__exam=exam)
        .select_related("candidate")
        .annotate(
            high=Count("events", filter=Q(events__severity="high") & ~Q(events__review_status=DISMISSED)),
            flags=Count("events", filter=~Q(events__review_status=DISMISSED)),
        )
        .order_by("-high", "-flags", "candidate__name")
    )
    return render(request, "review/exam.html", {"exam": exam, "sessions": sessions})


@login_required
def review_session(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_reviewer(request.user, public_id)
    services.audit_view(
        action="report_view", actor=request.user, subject=str(session.public_id), session=session
    )
    events = list(session.events.all())
    return render(
        request,
        "review/session.html",
        {
            "session": session,
            "exam": session.exam,
            "events": events,
            "risk": risk_of(events),
            "votes": services.session_violation_votes(session),
            "decisions": session.decisions.select_related("reviewer", "event"),
            "chat": session.messages.select_related("author", "session__candidate"),
        },
    )


@require_POST
@login_required
def review_event(request: HttpRequest, public_id) -> HttpResponse:
    event = get_event_for_reviewer(request.user, public_id)
    try:
        services.event_review(
            event=event,
            reviewer=request.user,
            decision=request.POST.get("decision", ""),
            note=request.POST.get("note", "")[:1000],
        )
    except ValueError as exc:
        messages.error(request, str(exc))
    session_url = reverse("review_session", args=[event.session.public_id])
    return redirect(f"{session_url}#event-{event.public_id}")


@require_POST
@login_required
def review_decide(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_reviewer(request.user, public_id)
    try:
        result = services.session_review(
            session=session,
            reviewer=request.user,
            outcome=request.POST.get("outcome", ""),
            note=request.POST.get("note", "")[:1000],
        )
    except (ValueError, IllegalTransition) as exc:
        messages.error(request, str(exc))
    else:
        if result == ReviewOutcome.AWAITING_SECOND_REVIEWER:
            messages.info(
                request, "Violation proposed. A second reviewer must confirm it before it is final."
            )
        else:
            messages.success(request, f"Session is now {result}.")
    return redirect("review_session", public_id=session.public_id)


@login_required
def evidence(request: HttpRequest, public_id) -> HttpResponse:
    event = get_event_for_staff(request.user, public_id)
    if not event.evidence:
        raise Http404("no evidence frame (none taken, or purged after retention)")
    services.audit_view(
        action="evidence_view",
        actor=request.user,
        subject=str(event.public_id),
        session=event.session,
        details={"event": str(event.public_id), "type": event.type},
    )
    try:
        handle = event.evidence.open("rb")
    except FileNotFoundError:
        raise Http404("evidence file missing") from None
    response = FileResponse(handle, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
def review_export(request: HttpRequest, code, fmt: str) -> HttpResponse:
    exam = get_exam_for_reviewer(request.user, code)
    if fmt not in reports.FORMATS:
        raise Http404("reports export as csv, json or pdf")
    services.audit_record(action="report_export", actor=request.user, exam=exam, details={"format": fmt})
    response = HttpResponse(reports.report_render(exam, fmt), content_type=reports.FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="report-{exam.code}.{fmt}"'
    return response
