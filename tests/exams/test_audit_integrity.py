"""Nobody forges a review or rewrites the audit: decisions, review statuses and
audit rows are read-only in the admin, and the audit table is append-only."""

import pytest
from django.db import DatabaseError, connection, transaction

from exams import services
from exams.models import AuditEntry, AuditEntryChanged, Event, ReviewDecision
from tests.conftest import advance


@pytest.fixture
def entry(candidate):
    return services.audit_record(action="exam_start", actor_label="candidate:x", session=candidate.session)


@pytest.mark.django_db
def test_it_keeps_audit_rows_when_the_exam_is_deleted(exam, entry):
    session_id = entry.session.public_id
    exam.delete()
    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.exam is None and entry.session is None
    assert "Algebra final" in entry.subject_label and str(session_id) in entry.subject_label


@pytest.mark.django_db
def test_it_refuses_to_edit_or_delete_an_audit_row(entry):
    entry.action = "nothing_happened"
    with pytest.raises(AuditEntryChanged):
        entry.save()
    with pytest.raises(AuditEntryChanged):
        entry.delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "exam_start"


@pytest.mark.django_db
def test_it_refuses_sql_updates_and_deletes_of_audit_rows(entry):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    rows = AuditEntry.objects.filter(pk=entry.pk)
    for change in (
        lambda: rows.update(action="nothing_happened"),
        lambda: rows.update(details={"forged": True}),
        lambda: rows.update(exam=None, actor_label="someone else"),
        lambda: rows.delete(),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            change()
    rows.update(session=None, exam=None)  # what SET_NULL does: allowed
    assert rows.get().action == "exam_start" and rows.get().subject_label


@pytest.mark.django_db
def test_it_offers_decisions_and_audit_read_only_in_the_admin(admin_client, reviewer, candidate, entry):
    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    decision = ReviewDecision.objects.create(session=session, reviewer=reviewer, decision="violation")
    assert admin_client.get("/admin/exams/reviewdecision/add/").status_code == 403
    assert admin_client.get("/admin/exams/auditentry/add/").status_code == 403
    form = {"session": session.pk, "reviewer": reviewer.pk, "decision": "violation"}
    admin_client.post("/admin/exams/reviewdecision/add/", form)
    assert ReviewDecision.objects.count() == 1
    admin_client.post(f"/admin/exams/reviewdecision/{decision.pk}/change/", {**form, "decision": "clear"})
    assert (
        admin_client.post(f"/admin/exams/reviewdecision/{decision.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert (
        admin_client.post(f"/admin/exams/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    decision.refresh_from_db()
    assert decision.decision == "violation"
    # Viewing stays possible.
    assert admin_client.get(f"/admin/exams/reviewdecision/{decision.pk}/change/").status_code == 200
    assert admin_client.get(f"/admin/exams/auditentry/{entry.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_it_offers_events_read_only_in_the_admin(admin_client, live_session):
    from django.utils import timezone

    now = timezone.now()
    event = Event.objects.create(
        session=live_session, type="tab_hidden", key="tab", severity="low", started_at=now, ended_at=now
    )
    page = admin_client.get(f"/admin/exams/event/{event.pk}/change/")
    assert page.status_code == 200  # viewing stays possible
    assert not page.context["adminform"].form.fields, "no field of an event is editable"
    assert admin_client.get("/admin/exams/event/add/").status_code == 403
    form = {
        "session": live_session.pk,
        "type": "no_face",
        "key": "tab",
        "severity": "high",
        "started_at_0": now.date().isoformat(),
        "started_at_1": "00:00:00",
        "ended_at_0": now.date().isoformat(),
        "ended_at_1": "00:00:00",
        "confidence": "1",
        "review_status": "dismissed",
    }
    admin_client.post(f"/admin/exams/event/{event.pk}/change/", form)
    admin_client.post("/admin/exams/event/add/", form)
    assert admin_client.post(f"/admin/exams/event/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = admin_client.get("/admin/exams/event/").content.decode()
    assert 'value="delete_selected"' not in changelist
    assert list(Event.objects.values_list("type", "severity", "review_status")) == [
        ("tab_hidden", "low", "pending")
    ]


@pytest.mark.django_db
def test_it_offers_only_reviewers_as_an_exams_reviewers(admin_client, exam, reviewer, proctor, outsider):
    page = admin_client.get(f"/admin/exams/exam/{exam.pk}/change/")
    choices = set(
        page.context["adminform"].form.fields["reviewers"].queryset.values_list("username", flat=True)
    )
    assert "reviewer" in choices and "proctor" not in choices and "outsider" not in choices


@pytest.mark.django_db
def test_it_still_deletes_an_exam_with_decisions_in_the_admin(admin_client, exam, reviewer, candidate, entry):
    session = candidate.session
    advance(session, "consented", "verified", "in_progress", "submitted")
    ReviewDecision.objects.create(session=session, reviewer=reviewer, decision="clear")
    changelist = admin_client.get("/admin/exams/reviewdecision/").content.decode()
    assert 'value="delete_selected"' not in changelist  # no bulk delete of decisions either
    response = admin_client.post(f"/admin/exams/exam/{exam.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ReviewDecision.objects.exists()
    assert AuditEntry.objects.filter(pk=entry.pk, exam=None).exists()  # the audit outlives the exam
