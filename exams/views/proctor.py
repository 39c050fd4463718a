"""The proctors' pages: their exams, the live grid, one candidate's detail."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from exams import live, services
from exams.access import (
    exams_for_proctor,
    get_event_for_proctor,
    get_exam_for_proctor,
    get_session_for_proctor,
    is_proctor,
)
from exams.clock import clock_text
from exams.models import ExamSession, IllegalTransition
from exams.views.review import reference_response


@login_required
def proctor_index(request: HttpRequest) -> HttpResponse:
    if not is_proctor(request.user):
        raise PermissionDenied("proctors only")
    return render(request, "proctor/index.html", {"exams": exams_for_proctor(request.user)})


@login_required
def proctor_live(request: HttpRequest, code) -> HttpResponse:
    exam = get_exam_for_proctor(request.user, code)
    sessions = ExamSession.objects.filter(candidate__exam=exam).select_related("candidate")
    return render(
        request,
        "proctor/live.html",
        {"exam": exam, "sessions": sessions, "states": ExamSession.State.choices},
    )


@login_required
def proctor_session(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_proctor(request.user, public_id)
    return render(
        request,
        "proctor/session.html",
        {
            "session": session,
            "exam": session.exam,
            "events": [
                live.event_payload(e)
                for e in session.events.select_related("session__candidate", "acknowledged_by")
            ],
            "actions": services.PROCTOR_ACTIONS,
            "max_extra_minutes": services.MAX_EXTRA_MINUTES,
            "chat": session.messages.select_related("author", "session__candidate"),
        },
    )


@login_required
def proctor_thumbnail(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_proctor(request.user, public_id)
    data = live.picture(str(session.public_id))
    if not data:
        return HttpResponse(status=204)
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "no-store"
    return response


@login_required
def proctor_reference(request: HttpRequest, public_id) -> HttpResponse:
    """The candidate's reference photo, for the proctor to compare with the live
    picture; audited like the reviewers' view of it."""
    session = get_session_for_proctor(request.user, public_id)
    return reference_response(request, session)


@require_POST
@login_required
def proctor_action(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_proctor(request.user, public_id)
    action = request.POST.get("action", "")
    try:
        services.proctor_act(
            session=session, actor=request.user, action=action, text=request.POST.get("text", "")
        )
    except (ValueError, IllegalTransition) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _DONE[action].format(name=session.candidate.name))
    return redirect("proctor_session", public_id=session.public_id)


# What a proctor is told once an action went through.
_DONE = {
    "message": "Sent your message to {name}.",
    "warn": "Warned {name}.",
    "pause": "Paused {name}'s exam.",
    "resume": "Resumed {name}'s exam.",
    "end": "Ended {name}'s exam.",
    "message_all": "Sent your message to {count} candidates in the exam.",
    "pause_all": "Paused the exam for {count} candidates.",
    "resume_all": "Resumed the exam for {count} candidates.",
}


@require_POST
@login_required
def proctor_extra_time(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_proctor(request.user, public_id)
    try:
        minutes = int(request.POST.get("minutes", ""))
        session = services.session_extend(session=session, actor=request.user, minutes=minutes)
    except ValueError:
        messages.error(
            request, f"Extra time is a whole number of minutes, 1 to {services.MAX_EXTRA_MINUTES}."
        )
    except IllegalTransition as exc:
        messages.error(request, str(exc).capitalize() + ".")
    else:
        ends = f" Their exam now ends at {clock_text(session.deadline)}." if session.deadline else ""
        messages.success(request, f"Gave {session.candidate.name} {minutes} more minutes.{ends}")
    return redirect("proctor_session", public_id=session.public_id)


@require_POST
@login_required
def proctor_exam_action(request: HttpRequest, code) -> HttpResponse:
    exam = get_exam_for_proctor(request.user, code)
    action = request.POST.get("action", "")
    try:
        count = services.exam_act(
            exam=exam, actor=request.user, action=action, text=request.POST.get("text", "")
        )
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _DONE[action].format(count=count))
    return redirect("proctor_live", code=exam.code)


@require_POST
@login_required
def proctor_acknowledge(request: HttpRequest, public_id) -> JsonResponse:
    """The grid acknowledges an alert with fetch(); it answers with the alert as pushed."""
    event = get_event_for_proctor(request.user, public_id)
    event = services.event_acknowledge(event=event, actor=request.user)
    return JsonResponse({"event": live.event_payload(event)})
