"""Roster import in the browser, for administrators, inside the Django admin.

The page sends the CSV once to be parsed, then one request per row with that
row's photo, so the person importing sees every row land (or fail, with its
reason) as it happens, and a bad row never costs the others. Encoding a face
takes 0.1-0.2 s, so a roster of hundreds is minutes of work: one row per
request keeps every request short and the progress real.

ExamAdmin.get_urls mounts these views behind admin_site.admin_view (signed-in
staff); each one also needs the add-candidate permission.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from exams import services
from exams.models import Exam

MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_PHOTO_BYTES = services.roster.ROSTER_PHOTO_MAX_BYTES  # one limit: roster folder, browser, admin


def _exam_for_importer(request: HttpRequest, exam_id) -> Exam:
    if not request.user.has_perm("exams.add_candidate"):
        raise PermissionDenied("importing candidates needs the 'add candidate' permission")
    return get_object_or_404(Exam, pk=exam_id)


def roster_page(request: HttpRequest, exam_id, admin_context: dict) -> HttpResponse:
    exam = _exam_for_importer(request, exam_id)
    context = {
        **admin_context,
        "exam": exam,
        "title": f"Import roster: {exam.title}",
        "max_photo_mb": MAX_PHOTO_BYTES // (1024 * 1024),
        "max_photo_bytes": MAX_PHOTO_BYTES,
        "candidates": exam.candidates.count(),
    }
    return render(request, "admin/exams/exam/roster_import.html", context)


@require_POST
def roster_parse(request: HttpRequest, exam_id) -> JsonResponse:
    """The CSV's rows as JSON, or a 400 with the reason the whole file is refused."""
    _exam_for_importer(request, exam_id)
    upload = request.FILES.get("csv")
    if upload is None:
        return JsonResponse({"error": "choose a roster CSV file"}, status=400)
    if upload.size > MAX_CSV_BYTES:
        return JsonResponse({"error": f"the CSV is larger than {MAX_CSV_BYTES // 1024} KB"}, status=400)
    try:
        rows = services.roster_rows(upload.read().decode("utf-8-sig"))
    except UnicodeDecodeError:
        return JsonResponse(
            {"error": "the CSV is not UTF-8 text; save it as 'CSV UTF-8' and try again"}, status=400
        )
    except ValueError as exc:
        return JsonResponse({"error": f"{exc} (the columns are name,email,photo)"}, status=400)
    if not rows:
        return JsonResponse({"error": "the CSV has a header but no rows"}, status=400)
    return JsonResponse({"rows": rows})


@require_POST
def roster_row(request: HttpRequest, exam_id) -> JsonResponse:
    """Import one row: ``name``, ``email`` and an optional ``photo`` file. Always 200
    with ``{"name", "email", "link", "error", "status"}`` for a row-level problem, like
    the CLI; ``status`` is new, existing (already on the exam, unchanged) or refused."""
    exam = _exam_for_importer(request, exam_id)
    name = request.POST.get("name", "").strip()
    email = request.POST.get("email", "").strip().lower()
    photo = request.FILES.get("photo")
    result = {"name": name, "email": email, "link": "", "error": "", "status": services.roster.REFUSED}
    candidate = None
    try:
        photo_bytes = b""
        if photo is not None:
            if photo.size > MAX_PHOTO_BYTES:
                raise services.RosterError(
                    f"photo {photo.name} is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB"
                )
            photo_bytes = photo.read()
        already = services.candidate_on_exam(exam=exam, email=email) is not None
        candidate = services.candidate_add(
            exam=exam, name=name, email=email, photo_name=photo.name if photo else "", photo_bytes=photo_bytes
        )
    except services.RosterError as exc:
        result["error"] = str(exc)
    else:
        result["link"] = request.build_absolute_uri(candidate.link_path())
        result["photo"] = bool(candidate.reference_encodings)
        result["status"] = services.roster.EXISTING if already else services.roster.NEW
    services.audit_record(
        action="roster_row_import",
        actor=request.user,
        exam=exam,
        # By id, never the email: the audit is append-only and outlives erasure.
        # A refused row's error is left out too, as it quotes the row's name or email.
        details={"candidate": candidate.pk if candidate else None, "status": result["status"]},
    )
    return JsonResponse(result)
