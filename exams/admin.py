from django import forms
from django.contrib import admin, messages
from django.db import models
from django.urls import path
from django.utils.html import format_html

from exams import services
from exams.admin_forms import ExamForm
from exams.models import AuditEntry, Candidate, Event, Exam, ExamSession, ReviewDecision
from exams.views import roster


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
    form = ExamForm  # checks and thresholds as fields; proctors only from the Proctor group
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
    readonly_fields = ("token", "invitation_link")
    actions = ["send_invitations"]

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
