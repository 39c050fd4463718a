"""The audit keeps no personal data that erasure cannot reach.

Rows written from now on name candidates and sessions by id only: an
invitation or a roster row points to the candidate, a proctor's message to
its Message row, a reviewer's note to its ReviewDecision. Rows written before
held the candidate's email (``roster_row_import``, ``invitation_sent``) and
staff's free text (``proctor_message``, ``proctor_warn``, ``proctor_end``,
``event_confirm``, ``session_violation`` ...) in ``details``.

The append-only trigger of 0007 allowed one UPDATE: emptying a link. This
migration allows a second, as narrow: replacing the value of the ``email``,
``text`` or ``note`` key of ``details`` by ``"[erased]"``, every other column
and key unchanged, and a candidate's actor label (``candidate:<email>`` in
rows older still, from before 3ef8c37) by ``candidate:[erased]``.
``candidate_erase`` uses it on the old rows about the
candidate it erases, and the retention purge on the old chat text of an
exam it purges.

Old rows are not rewritten wholesale: for a candidate who is still on their
exam, the email in an old row is part of the record until they are erased
(and erasure finds the row by that email). What no later erasure could reach
is scrubbed here once: an email (in details or in a ``candidate:`` label)
that belongs to no current candidate of the row's exam (the candidate was
erased, deleted, or the roster row refused), and staff text in rows whose
session was deleted or whose candidate was already erased.
"""

from django.db import migrations
from django.db.models import Q

KEYS = ("email", "text", "note")
ERASED = "[erased]"
ERASED_LABEL = "candidate:[erased]"

# 0007's function, with the second allowed UPDATE. The helper compares the
# two ``details`` with the personal keys taken out, then checks each personal
# key of the new row is unchanged or "[erased]" and was there before, and that
# no personal key was dropped (an erased value stays visible as erased).
APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION exams_auditentry_details_erased(old jsonb, new jsonb) RETURNS boolean AS $$
    SELECT jsonb_typeof(old) = 'object' AND jsonb_typeof(new) = 'object'
        AND (old - ARRAY['email', 'text', 'note']) = (new - ARRAY['email', 'text', 'note'])
        AND NOT EXISTS (
            SELECT 1 FROM jsonb_each(new) AS n(key, value)
            WHERE n.key IN ('email', 'text', 'note')
                AND n.value IS DISTINCT FROM old -> n.key
                AND (n.value <> '"[erased]"'::jsonb OR NOT old ? n.key)
        )
        AND NOT EXISTS (
            SELECT 1 FROM jsonb_object_keys(old) AS o(key)
            WHERE o.key IN ('email', 'text', 'note') AND NOT new ? o.key
        )
$$ LANGUAGE sql IMMUTABLE;

CREATE OR REPLACE FUNCTION exams_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'exams_auditentry is append-only: audit rows are never deleted';
    END IF;
    IF (NEW.id, NEW.created_at, NEW.action, NEW.subject_label)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.created_at, OLD.action, OLD.subject_label)
        AND (NEW.actor_label IS NOT DISTINCT FROM OLD.actor_label
             OR (left(OLD.actor_label, 10) = 'candidate:' AND NEW.actor_label = 'candidate:[erased]'))
        AND (NEW.details IS NOT DISTINCT FROM OLD.details
             OR exams_auditentry_details_erased(OLD.details, NEW.details))
        AND (NEW.exam_id IS NULL OR NEW.exam_id IS NOT DISTINCT FROM OLD.exam_id)
        AND (NEW.session_id IS NULL OR NEW.session_id IS NOT DISTINCT FROM OLD.session_id)
        AND (NEW.actor_id IS NULL OR NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'exams_auditentry is append-only: an UPDATE may only empty a link or erase details';
END
$$ LANGUAGE plpgsql;
"""

# Back to 0007's function exactly.
PREVIOUS_SQL = """
CREATE OR REPLACE FUNCTION exams_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'exams_auditentry is append-only: audit rows are never deleted';
    END IF;
    IF (NEW.id, NEW.created_at, NEW.actor_label, NEW.action, NEW.subject_label, NEW.details)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.created_at, OLD.actor_label, OLD.action, OLD.subject_label, OLD.details)
        AND (NEW.exam_id IS NULL OR NEW.exam_id IS NOT DISTINCT FROM OLD.exam_id)
        AND (NEW.session_id IS NULL OR NEW.session_id IS NOT DISTINCT FROM OLD.session_id)
        AND (NEW.actor_id IS NULL OR NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'exams_auditentry is append-only: an UPDATE may only empty exam_id, session_id, actor_id';
END
$$ LANGUAGE plpgsql;
DROP FUNCTION IF EXISTS exams_auditentry_details_erased(jsonb, jsonb);
"""

# Exam-wide proctor actions: their text went to every candidate of the exam,
# it is about none of them in particular.
EXAM_WIDE = ("proctor_message_all", "proctor_pause_all", "proctor_resume_all")


def _allow_erasing(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL)


def _forbid_erasing(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS_SQL)


def _scrub(AuditEntry, entry, keys) -> None:
    details = {k: (ERASED if k in keys and v != ERASED else v) for k, v in entry.details.items()}
    if details != entry.details:
        AuditEntry.objects.filter(pk=entry.pk).update(details=details)


def _scrub_unreachable(apps, schema_editor):
    """Old rows' personal data that no later erasure would find (see the docstring)."""
    AuditEntry = apps.get_model("exams", "AuditEntry")
    Candidate = apps.get_model("exams", "Candidate")
    current = set(Candidate.objects.filter(erased_at__isnull=True).values_list("exam_id", "email"))
    for entry in AuditEntry.objects.filter(details__has_key="email").iterator():
        email = entry.details.get("email")
        if isinstance(email, str) and (entry.exam_id, email.lower()) not in current:
            _scrub(AuditEntry, entry, ("email",))
    for entry in AuditEntry.objects.filter(actor_label__startswith="candidate:", actor_label__contains="@"):
        email = entry.actor_label.removeprefix("candidate:").lower()
        if (entry.exam_id, email) not in current:
            AuditEntry.objects.filter(pk=entry.pk).update(actor_label=ERASED_LABEL)
    erased_sessions = set(
        Candidate.objects.filter(erased_at__isnull=False, session__isnull=False).values_list(
            "session__id", flat=True
        )
    )
    for entry in AuditEntry.objects.filter(
        Q(details__has_key="text") | Q(details__has_key="note")
    ).iterator():
        if entry.action in EXAM_WIDE and entry.exam_id is not None:
            continue
        if entry.session_id is None or entry.session_id in erased_sessions:
            _scrub(AuditEntry, entry, ("text", "note"))


class Migration(migrations.Migration):
    dependencies = [
        ("exams", "0010_grid_event_acknowledged"),
    ]

    operations = [
        migrations.RunPython(_allow_erasing, _forbid_erasing),
        migrations.RunPython(_scrub_unreachable, migrations.RunPython.noop),
    ]
