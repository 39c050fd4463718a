from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AdminFileWidget
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from exams import services
from exams.access import REVIEWER_GROUP
from exams.admin_forms import CandidateForm, ExamForm
from exams.models import AuditEntry, Candidate, Event, Exam, ExamSession, ReviewDecision
from exams.storage import atomic_with_files
from exams.views import review, roster

User = get_user_model()


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
    form = ExamForm  # checks and thresholds as fields; proctors only from the Proctor group
    list_display = ("title", "opens_at", "closes_at", "retention_days", "purged_at")
    filter_horizontal = ("proctors", "reviewers")
    readonly_fields = ("code", "purged_at")
    # An LMS link typed without a scheme is https (Django 6's default, and every LMS's).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        # Only people with the reviewer role (or superusers) can be assigned to review.
        if db_field.name == "reviewers":
            kwargs["queryset"] = (
                User.objects.filter(Q(groups__name=REVIEWER_GROUP) | Q(is_superuser=True), is_active=True)
                .distinct()
                .order_by("username")
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:exam_id>/roster/", wrap(self.roster_page), name="exams_exam_roster"),
            path("<int:exam_id>/roster/parse", wrap(roster.roster_parse), name="exams_exam_roster_parse"),
            path("<int:exam_id>/roster/row", wrap(roster.roster_row), name="exams_exam_roster_row"),
            *super().get_urls(),
        ]

    def roster_page(self, request, exam_id):
        context = {**self.admin_site.each_context(request), "opts": self.model._meta}
        return roster.roster_page(request, exam_id, context)


class _LinkedFile:
    """What the admin's file widget shows for a stored file: its name, linked to
    ``url`` instead of the storage URL (media is never served directly)."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url

    def __str__(self) -> str:
        return self.name.rsplit("/", 1)[-1]


class ReferencePhotoWidget(AdminFileWidget):
    def __init__(self, *args, link: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.link = link

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        if context["widget"]["is_initial"]:
            context["widget"]["value"] = _LinkedFile(str(value), self.link)
        return context


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    form = CandidateForm
    list_display = ("name", "email", "exam", "has_reference", "reference_unverified")
    list_filter = ("exam",)
    search_fields = ("name", "email", "external_id")
    readonly_fields = ("token", "invitation_link", "erased_at")
    actions = ("send_invitations", "export_data", "erase_data")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The admin saves inside its own transaction; a photo written by a save
        # that then rolls back is deleted with it.
        with atomic_with_files():
            return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.action(description="Export the selected candidate's data (zip)", permissions=["change"])
    def export_data(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one candidate to export.", messages.WARNING)
            return None
        candidate = queryset.get()
        response = HttpResponse(content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="candidate-{candidate.pk}.zip"'
        response["Cache-Control"] = "no-store"
        services.candidate_export(candidate=candidate, out=response, actor=request.user)
        return response

    @admin.action(description="Erase the selected candidates' personal data", permissions=["delete"])
    def erase_data(self, request, queryset):
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Erase personal data?",
                "candidates": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/exams/candidate/erase_confirmation.html", context)
        erased = 0
        for candidate in queryset:
            try:
                services.candidate_erase(candidate=candidate, actor=request.user)
            except services.DataRightsError as exc:
                self.message_user(request, f"{candidate}: {exc}", messages.ERROR)
            else:
                erased += 1
        if erased:
            self.message_user(
                request, f"Erased the personal data of {erased} candidate(s).", messages.SUCCESS
            )
        return None

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/reference/", wrap(self.reference_photo), name="exams_candidate_reference"),
            *super().get_urls(),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and "reference_photo" in form.base_fields:
            link = reverse("admin:exams_candidate_reference", args=[obj.pk])
            form.base_fields["reference_photo"].widget = ReferencePhotoWidget(link=link)
        return form

    def reference_photo(self, request, object_id):
        """The stored reference photo, for staff who may view this candidate."""
        candidate = self.get_object(request, object_id)
        if candidate is None:
            raise Http404("no such candidate")
        if not self.has_view_permission(request, candidate):
            raise PermissionDenied("no permission to view this candidate")
        if candidate.reference_photo:  # audited like the reviewers' and proctors' views
            services.audit_view(
                action="reference_view",
                actor=request.user,
                subject=f"candidate:{candidate.pk}",
                exam=candidate.exam,
                session=getattr(candidate, "session", None),
            )
        return review.image_response(candidate.reference_photo)

    @admin.display(boolean=True, description="face on file")
    def has_reference(self, candidate: Candidate) -> bool:
        return bool(candidate.reference_encodings)

    @admin.display(description="invitation link")
    def invitation_link(self, candidate: Candidate) -> str:
        if not candidate.pk:
            return "Saved candidates get a link."
        link = services.invitation_link(candidate)
        return format_html('<a href="{}">{}</a>', link, link)

    @admin.action(description="Send invitations by email")
    def send_invitations(self, request, queryset):
        result = services.invitations_send(
            candidates=queryset.select_related("exam", "session"), actor=request.user
        )
        self.message_user(request, str(result), messages.WARNING if result.skipped else messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        if getattr(form, "new_encodings", None):
            obj.reference_encodings = form.new_encodings
            obj.reference_unverified = False
        elif "reference_photo" in form.changed_data and not obj.reference_photo:
            obj.reference_encodings = []  # the photo was cleared: its face goes with it
        super().save_model(request, obj, form, change)
        services.session_for_candidate(obj)


def _say_if_locked(request, session: ExamSession | None) -> None:
    """On the admin page of a session (or of one of its events) whose outcome is
    final: say that its decisions are locked, in the workbench's words."""
    locked = services.session_decisions_locked(session) if session is not None else ""
    if locked:
        messages.info(request, locked)


@admin.register(ExamSession)
class ExamSessionAdmin(admin.ModelAdmin):
    list_display = ("candidate", "state", "started_at", "finished_at")
    list_filter = ("state", "candidate__exam")
    readonly_fields = [f.name for f in ExamSession._meta.fields]

    def has_add_permission(self, request):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        _say_if_locked(request, self.get_object(request, object_id))
        return super().change_view(request, object_id, form_url, extra_context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the product's own workflows: visible in the admin,
    never added, edited or deleted there (a decision added by hand in another
    reviewer's name would satisfy the two-reviewer rule on its own).

    They still go with what they belong to: deleting an exam or a candidate
    in the admin deletes its decisions (the audit keeps that they were made),
    so only this model's own admin pages refuse to delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        match = getattr(request, "resolver_match", None)
        own_pages = f"{self.opts.app_label}_{self.opts.model_name}_"
        return bool(match and match.url_name and not match.url_name.startswith(own_pages))


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "action", "subject_label", "exam", "session")
    list_filter = ("action",)
    search_fields = ("actor_label", "action", "subject_label")


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "reviewer", "decision", "session", "event")
    list_filter = ("decision",)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Events are what the pipeline and the browser reported, and reviewers decide
    them on the review page, which records who and why: an event edited here
    (its type, times, severity or evidence) would change a report and a risk
    score behind the reviewers' backs."""

    list_display = ("type", "severity", "session", "started_at", "ended_at", "review_status")
    list_filter = ("type", "severity", "review_status")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, object_id)
        _say_if_locked(request, event.session if event is not None else None)
        return super().change_view(request, object_id, form_url, extra_context)
