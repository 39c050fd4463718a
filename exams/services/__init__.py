"""Workflows that span several models. Views, consumers, tasks and commands call these.

Each function is named ``<entity>_<action>``, takes keyword-only arguments,
writes an audit line for staff actions, and is safe to call twice where the
caller may retry. One module per part of the product:

- ``audit``: the audit log;
- ``roster``: exams, roster parsing and import;
- ``candidate_flow``: consent, identity verification, start and submit;
- ``events``: flagged events and browser integrity signals;
- ``connections``: the candidate's websocket claim on the session;
- ``proctoring``: proctor actions and the candidate's chat;
- ``review``: reviewers' decisions and the two-reviewer rule;
- ``retention``: the purge of biometric data and evidence.

Everything public is importable from ``exams.services`` itself.
"""

from exams.services.audit import (
    audit_anonymous_refusal,
    audit_record,
    candidate_label,
)
from exams.services.candidate_flow import (
    session_consent,
    session_start,
    session_submit,
    verification_capture_reference,
    verification_compare,
    verification_pending,
    verification_result,
)
from exams.services.connections import (
    connection_close,
    connection_open,
    connection_refused,
    connections_mark_stale,
)
from exams.services.events import (
    analysis_record,
    event_new,
    event_open,
    event_record_instant,
    events_apply,
    events_close_open,
    signal_record,
)
from exams.services.proctoring import (
    DEFAULT_WARNING,
    EXAM_ACTIONS,
    MAX_EXTRA_MINUTES,
    PROCTOR_ACTIONS,
    event_acknowledge,
    exam_act,
    message_from_candidate,
    proctor_act,
    session_extend,
)
from exams.services.retention import (
    exams_purge_expired,
)
from exams.services.review import (
    event_review,
    session_review,
    session_violation_votes,
)
from exams.services.roster import (
    ROSTER_COLUMNS,
    RosterError,
    RosterRow,
    candidate_add,
    exam_create,
    reference_encodings,
    roster_import,
    roster_photo,
    roster_rows,
    session_for_candidate,
)

__all__ = [
    "analysis_record",
    "audit_anonymous_refusal",
    "audit_record",
    "candidate_label",
    "ROSTER_COLUMNS",
    "RosterError",
    "RosterRow",
    "candidate_add",
    "exam_create",
    "reference_encodings",
    "roster_import",
    "roster_photo",
    "roster_rows",
    "session_for_candidate",
    "events_close_open",
    "session_consent",
    "session_start",
    "session_submit",
    "verification_capture_reference",
    "verification_compare",
    "verification_pending",
    "verification_result",
    "event_new",
    "event_open",
    "event_record_instant",
    "events_apply",
    "signal_record",
    "connection_close",
    "connection_open",
    "connection_refused",
    "connections_mark_stale",
    "DEFAULT_WARNING",
    "PROCTOR_ACTIONS",
    "EXAM_ACTIONS",
    "MAX_EXTRA_MINUTES",
    "event_acknowledge",
    "exam_act",
    "message_from_candidate",
    "proctor_act",
    "session_extend",
    "event_review",
    "session_review",
    "session_violation_votes",
    "exams_purge_expired",
]
