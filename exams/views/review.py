"""The reviewers' pages: sessions by risk, one session's report (the workbench),
decisions, evidence and exports.

Decisions post as plain forms, so the pages work without JavaScript; the
workbench's script posts the same forms with ``Accept: application/json`` and
gets JSON back instead of a redirect."""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
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


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _rows_filter(request: HttpRequest, rows: list) -> tuple[list, bool]:
    mine = request.GET.get("queue") == "mine"
    return ([row for row in rows if row.in_my_queue] if mine else rows), mine


@login_required
def review_index(request: HttpRequest) -> HttpResponse:
    if not is_reviewer(request.user):
        raise PermissionDenied("reviewers only")
    exams = exams_for_reviewer(request.user).annotate(sessions=Count("candidates__session"))
    queue = services.review_queue(reviewer=request.user)
    return render(request, "review/index.html", {"exams": exams, "queue": queue})


@login_required
def review_exam(request: HttpRequest, code) -> HttpResponse:
    exam = get_exam_for_reviewer(request.user, code)
    rows = services.review_rows(
        sessions=ExamSession.objects.filter(candidate__exam=exam), reviewer=request.user
    )
    shown, mine = _rows_filter(request, rows)
    return render(
        request,
        "review/exam.html",
        {"exam": exam, "rows": shown, "mine": mine, "queued": sum(1 for r in rows if r.in_my_queue)},
    )


@login_required
def review_session(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_reviewer(request.user, public_id)
    services.audit_view(
        action="report_view", actor=request.user, subject=str(session.public_id), session=session
    )
    events = list(session.events.prefetch_related("frames"))
    return render(
        request,
        "review/session.html",
        {
            "session": session,
            "exam": session.exam,
            "events": events,
            "strip": _strip(session, events),
            "types": sorted({(e.type, e.label) for e in events}),
            "has_reference": bool(session.candidate.reference_photo),
            "risk": risk_of(events),
            "votes": services.session_violation_votes(session),
            "decision_state": services.session_decision_state(session),
            "decisions_locked": services.session_decisions_locked(session),
            "decisions": session.decisions.select_related("reviewer", "event"),
            "chat": session.messages.select_related("author", "session__candidate"),
            "proctor_actions": _proctor_actions(session),
        },
    )


def _proctor_actions(session: ExamSession) -> list[dict]:
    """The report's audited proctor actions, with a time and words for the page."""
    return [
        {**row, "when": parse_datetime(row["at"]), "label": row["action"].replace("_", " ")}
        for row in reports.proctor_action_rows(session)
    ]


def _strip(session: ExamSession, events: list[Event]) -> dict:
    """The time axis of the session's timeline strip: from its start (or its
    first event) to its end (or its last event, or now while it runs)."""
    times = [t for e in events for t in (e.started_at, e.ended_at)]
    start = min([t for t in (session.started_at, *times) if t is not None], default=None)
    end = max([t for t in (session.finished_at, *times) if t is not None], default=None)
    if start is not None and (end is None or session.is_live):
        end = max(end or start, timezone.now())
    return {"start": start, "end": end}


def _session_json(session: ExamSession, **extra) -> JsonResponse:
    session = ExamSession.objects.select_related("candidate__exam").get(pk=session.pk)
    state = services.session_decision_state(session)
    risk = risk_of(session.events.all())
    return JsonResponse(
        {
            "session": str(session.public_id),
            "state": session.state,
            "state_label": session.get_state_display(),
            "decision_state": state.value,
            "decision_state_label": state.label,
            "risk": risk.score,
            "risk_lines": [{"points": line.points, "reason": line.reason} for line in risk.lines],
            "votes": services.session_violation_votes(session),
            "decisions_locked": services.session_decisions_locked(session),
            **extra,
        }
    )


def _refused_status(exc: Exception) -> int:
    """409 for a decision on a session whose outcome is final (the request was
    fine, the session's state refuses it); 400 for a bad request."""
    return 409 if isinstance(exc, services.DecisionLocked) else 400


def _event_json(event: Event) -> dict:
    return {
        "id": str(event.public_id),
        "type": event.type,
        "label": event.label,
        "review_status": event.review_status,
    }


@require_POST
@login_required
def review_event(request: HttpRequest, public_id) -> HttpResponse:
    event = get_event_for_reviewer(request.user, public_id)
    try:
        event = services.event_review(
            event=event,
            reviewer=request.user,
            decision=request.POST.get("decision", ""),
            note=request.POST.get("note", "")[:1000],
        )
    except (ValueError, services.DecisionLocked) as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=_refused_status(exc))
        messages.error(request, str(exc))
    if _wants_json(request):
        return _session_json(event.session, events=[_event_json(event)])
    session_url = reverse("review_session", args=[event.session.public_id])
    return redirect(f"{session_url}#event-{event.public_id}")


@require_POST
@login_required
def review_bulk(request: HttpRequest, public_id) -> HttpResponse:
    """Confirm or dismiss every event of one type in the session."""
    session = get_session_for_reviewer(request.user, public_id)
    event_type = request.POST.get("type", "")
    try:
        changed = services.events_review_bulk(
            session=session,
            reviewer=request.user,
            event_type=event_type,
            decision=request.POST.get("decision", ""),
            note=request.POST.get("note", "")[:1000],
        )
    except (ValueError, services.DecisionLocked) as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=_refused_status(exc))
        messages.error(request, str(exc))
        return redirect("review_session", public_id=session.public_id)
    if _wants_json(request):
        return _session_json(session, events=[_event_json(e) for e in changed])
    messages.success(request, f"{len(changed)} {event_type} event(s) changed.")
    return redirect("review_session", public_id=session.public_id)


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
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=_refused_status(exc))
        messages.error(request, str(exc))
    else:
        if result == ReviewOutcome.AWAITING_SECOND_REVIEWER:
            text = "Violation proposed. A second reviewer must confirm it before it is final."
        else:
            text = f"Session is now {result}."
        if _wants_json(request):
            return _session_json(session, result=result, message=text)
        level = messages.INFO if result == ReviewOutcome.AWAITING_SECOND_REVIEWER else messages.SUCCESS
        messages.add_message(request, level, text)
    return redirect("review_session", public_id=session.public_id)


@login_required
def review_next(request: HttpRequest) -> HttpResponse:
    """The next session in the reviewer's queue (after ``?after=<session>``), or
    the review page with a note when the queue is empty."""
    if not is_reviewer(request.user):
        raise PermissionDenied("reviewers only")
    after = None
    if request.GET.get("after"):
        after = get_session_for_reviewer(request.user, request.GET["after"])
    following = services.review_queue_next(reviewer=request.user, after=after)
    if following is None:
        messages.info(request, "Your queue is empty: no finished session waits for your decision.")
        return redirect("review_index")
    return redirect("review_session", public_id=following.public_id)


def image_response(field) -> FileResponse:
    """A stored picture of a candidate, never kept by the browser or a proxy
    (``no-store``: the next viewer of a shared computer must not find it in the
    cache); 404 once purged or missing."""
    if not field:
        raise Http404("no picture (none taken, or purged after retention)")
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("picture file missing") from None
    content_type = mimetypes.guess_type(field.name)[0] or "image/jpeg"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


def reference_response(request: HttpRequest, session: ExamSession) -> FileResponse:
    """The candidate's reference photo, audited like evidence (once per viewer
    and session per 10 min); the caller has checked access."""
    photo = session.candidate.reference_photo
    if photo:
        services.audit_view(
            action="reference_view",
            actor=request.user,
            subject=str(session.public_id),
            session=session,
            details={"unverified": session.candidate.reference_unverified},
        )
    return image_response(photo)


@login_required
def review_reference(request: HttpRequest, public_id) -> HttpResponse:
    """The candidate's reference photo, for the reviewer to compare with the evidence."""
    session = get_session_for_reviewer(request.user, public_id)
    return reference_response(request, session)


def _audit_event_picture(request: HttpRequest, event, *, action: str) -> None:
    """An event's evidence or clip was viewed: once per viewer, action and event per 10 min."""
    services.audit_view(
        action=action,
        actor=request.user,
        subject=str(event.public_id),
        session=event.session,
        details={"event": str(event.public_id), "type": event.type},
    )


@login_required
def evidence_frame(request: HttpRequest, public_id, index: int) -> HttpResponse:
    """Frame ``index`` (from 0) of an event's clip, audited like the evidence:
    once per viewer and clip per 10 min (a clip is watched frame by frame)."""
    event = get_event_for_staff(request.user, public_id)
    frame = event.frames.all()[index : index + 1].first()
    if frame is None:
        raise Http404("no such clip frame")
    _audit_event_picture(request, event, action="clip_view")
    return image_response(frame.image)


@login_required
def evidence(request: HttpRequest, public_id) -> HttpResponse:
    event = get_event_for_staff(request.user, public_id)
    if not event.evidence:
        raise Http404("no evidence frame (none taken, or purged after retention)")
    _audit_event_picture(request, event, action="evidence_view")
    return image_response(event.evidence)


@login_required
def review_export(request: HttpRequest, code, fmt: str) -> HttpResponse:
    exam = get_exam_for_reviewer(request.user, code)
    if fmt not in reports.FORMATS:
        raise Http404("reports export as csv, json or pdf")
    services.audit_record(action="report_export", actor=request.user, exam=exam, details={"format": fmt})
    site_url = settings.SITE_URL or f"{request.scheme}://{request.get_host()}"
    response = HttpResponse(
        reports.report_render(exam, fmt, site_url=site_url), content_type=reports.FORMATS[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="report-{exam.code}.{fmt}"'
    return response
