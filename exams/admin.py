from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from exams import services
from exams.models import AuditEntry, Candidate, Event, Exam, ExamSession, ReviewDecision
from exams.storage import atomic_with_files
from exams.views import roster


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
    list_display = ("title", "opens_at", "closes_at", "retention_days", "purged_at")
    filter_horizontal = ("proctors",)
    readonly_fields = ("code", "purged_at")
    # An LMS link typed without a scheme is https (Django 6's default, and every LMS's).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

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


class CandidateForm(forms.ModelForm):
    """A reference photo uploaded here is encoded at once, with the same rule as
    the roster import: exactly one face, or the form says why and saves nothing."""

    class Meta:
        model = Candidate
        exclude = ("reference_encodings",)

    def clean_reference_photo(self):
        photo = self.cleaned_data.get("reference_photo")
        self.new_encodings = None
        if photo and "reference_photo" in self.changed_data:
            from detection.core import DetectionError

            try:
                self.new_encodings = services.reference_encodings(photo.read())
            except DetectionError as exc:
                raise forms.ValidationError(
                    f"{exc}. Upload a photo that shows the candidate's face alone."
                ) from None
            finally:
                photo.seek(0)
        return photo


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    form = CandidateForm
    list_display = ("name", "email", "exam", "has_reference", "reference_unverified")
    list_filter = ("exam",)
    search_fields = ("name", "email", "external_id")
    readonly_fields = ("token", "erased_at")
    actions = ("export_data", "erase_data")

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

    @admin.display(boolean=True, description="face on file")
    def has_reference(self, candidate: Candidate) -> bool:
        return bool(candidate.reference_encodings)

    def save_model(self, request, obj, form, change):
        if getattr(form, "new_encodings", None):
            obj.reference_encodings = form.new_encodings
            obj.reference_unverified = False
        elif "reference_photo" in form.changed_data and not obj.reference_photo:
            obj.reference_encodings = []  # the photo was cleared: its face goes with it
        super().save_model(request, obj, form, change)
        services.session_for_candidate(obj)


@admin.register(ExamSession)
class ExamSessionAdmin(admin.ModelAdmin):
    list_display = ("candidate", "state", "started_at", "finished_at")
    list_filter = ("state", "candidate__exam")
    readonly_fields = [f.name for f in ExamSession._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("type", "severity", "session", "started_at", "ended_at", "review_status")
    list_filter = ("type", "severity", "review_status")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "action", "exam", "session")
    list_filter = ("action",)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.register(ReviewDecision)
