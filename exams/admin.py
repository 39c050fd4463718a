from django.contrib import admin

from exams.models import AuditEntry, Candidate, Event, Exam, ExamSession, ReviewDecision


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
    list_display = ("title", "opens_at", "closes_at", "retention_days", "purged_at")
    filter_horizontal = ("proctors",)
    readonly_fields = ("code", "purged_at")


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "exam", "reference_unverified")
    list_filter = ("exam",)
    search_fields = ("name", "email", "external_id")
    exclude = ("reference_encodings",)
    readonly_fields = ("token",)


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
