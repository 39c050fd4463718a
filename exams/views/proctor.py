"""The proctors' pages: their exams, the live grid, one candidate's detail."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from exams import live, services
from exams.access import exams_for_proctor, get_exam_for_proctor, get_session_for_proctor, is_proctor
from exams.models import ExamSession, IllegalTransition


@login_required
def proctor_index(request: HttpRequest) -> HttpResponse:
    if not is_proctor(request.user):
        raise PermissionDenied("proctors only")
    return render(request, "proctor/index.html", {"exams": exams_for_proctor(request.user)})


@login_required
def proctor_live(request: HttpRequest, code) -> HttpResponse:
    exam = get_exam_for_proctor(request.user, code)
    sessions = ExamSession.objects.filter(candidate__exam=exam).select_related("candidate")
    return render(request, "proctor/live.html", {"exam": exam, "sessions": sessions})


@login_required
def proctor_session(request: HttpRequest, public_id) -> HttpResponse:
    session = get_session_for_proctor(request.user, public_id)
    return render(
        request,
        "proctor/session.html",
        {
            "session": session,
            "exam": session.exam,
            "events": session.events.all(),
            "actions": services.PROCTOR_ACTIONS,
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
        messages.success(request, f"{action.capitalize()} sent to {session.candidate.name}.")
    return redirect("proctor_session", public_id=session.public_id)
