"""Workflows that span several models. Views, consumers, tasks and commands call these.

Each function is named ``<entity>_<action>``, takes keyword-only arguments,
writes an audit line for staff actions, and is safe to call twice where the
caller may retry. One module per part of the product:

- ``audit``: the audit log;
- ``roster``: exams, roster parsing and import;
- ``candidate_flow``: consent (or declining it), identity verification, start and submit;
- ``invitations``: invitation links and emails;
- ``events``: flagged events and browser integrity signals;
- ``connections``: the candidate's websocket claim on the session;
- ``proctoring``: proctor actions and the candidate's chat;
- ``review``: reviewers' decisions and the two-reviewer rule;
- ``retention``: the purge of biometric data and evidence, and the media sweep;
- ``revocation``: open proctor sockets close when their user's rights go;
- ``data_rights``: one candidate's data, exported as a zip or erased.

Everything public is importable from ``exams.services`` itself.
"""

from exams.services.audit import (
    audit_anonymous_refusal,
    audit_record,
    audit_view,
    candidate_label,
)
from exams.services.candidate_flow import (
    TIME_UP,
    OutsideWindow,
    exam_window_check,
    session_consent,
    session_decline_consent,
    session_start,
    session_submit,
    session_time_up,
    sessions_submit_overdue,
    verification_capture_reference,
    verification_compare,
    verification_lost,
    verification_pending,
    verification_result,
)
from exams.services.connections import (
    connection_close,
    connection_open,
    connection_refused,
    connections_mark_stale,
    socket_error_audit,
)
from exams.services.data_rights import (
    DataRightsError,
    candidate_erase,
    candidate_export,
    candidate_find,
)
from exams.services.events import (
    analysis_record,
    camera_silent_after,
    camera_silent_check,
    cameras_flag_silent,
    event_merge_instant,
    event_new,
    event_open,
    event_record_instant,
    events_apply,
    events_close_at_connection_loss,
    events_close_open,
    signal_record,
)
from exams.services.invitations import (
    InvitationsSent,
    invitation_link,
    invitations_send,
    system_check_link,
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
    SWEEP_GRACE,
    exams_purge_expired,
    file_fields,
    media_sweep,
)
from exams.services.review import (
    DecisionLocked,
    ReviewRow,
    event_review,
    events_review_bulk,
    review_queue,
    review_queue_next,
    review_rows,
    session_decision_state,
    session_decisions_locked,
    session_review,
    session_violation_votes,
)
from exams.services.revocation import (
    staff_revoke_later,
)
from exams.services.roster import (
    ROSTER_COLUMNS,
    CandidateDraft,
    RosterError,
    RosterRow,
    RosterSummary,
    candidate_add,
    candidate_check,
    candidate_on_exam,
    candidate_write,
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
    "audit_view",
    "candidate_label",
    "ROSTER_COLUMNS",
    "RosterError",
    "RosterRow",
    "RosterSummary",
    "candidate_add",
    "CandidateDraft",
    "candidate_check",
    "candidate_write",
    "candidate_on_exam",
    "InvitationsSent",
    "invitation_link",
    "invitations_send",
    "system_check_link",
    "exam_create",
    "reference_encodings",
    "roster_import",
    "roster_photo",
    "roster_rows",
    "session_for_candidate",
    "events_close_open",
    "session_consent",
    "session_decline_consent",
    "session_start",
    "session_submit",
    "session_time_up",
    "sessions_submit_overdue",
    "OutsideWindow",
    "TIME_UP",
    "exam_window_check",
    "verification_capture_reference",
    "verification_compare",
    "verification_lost",
    "verification_pending",
    "verification_result",
    "camera_silent_after",
    "camera_silent_check",
    "cameras_flag_silent",
    "event_merge_instant",
    "events_close_at_connection_loss",
    "socket_error_audit",
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
    "events_review_bulk",
    "ReviewRow",
    "review_queue",
    "review_queue_next",
    "review_rows",
    "session_decision_state",
    "DecisionLocked",
    "session_decisions_locked",
    "session_review",
    "session_violation_votes",
    "exams_purge_expired",
    "staff_revoke_later",
    "SWEEP_GRACE",
    "file_fields",
    "media_sweep",
    "DataRightsError",
    "candidate_erase",
    "candidate_export",
    "candidate_find",
]
