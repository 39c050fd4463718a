"""The report as JSON or CSV text."""

from __future__ import annotations

import csv
import io
import json

from exams.models import Event, Exam
from exams.reports.data import exam_report

# The CSV is read in a spreadsheet: its header says in words what each column
# holds. Times are ISO 8601 in UTC (the database's zone), as the header says;
# the event's code stays beside its words for scripts (JSON keeps only codes).
CSV_COLUMNS = [
    "Candidate",
    "Email",
    "State",
    "Consented at (UTC)",
    "Started at (UTC)",
    "Finished at (UTC)",
    "How it ended",
    "Risk score",
    "Event",
    "Event code",
    "Severity",
    "Event started at (UTC)",
    "Event ended at (UTC)",
    "Confidence",
    "Review status",
    "Evidence",
]


def report_json(exam: Exam, *, site_url: str = "") -> str:
    return json.dumps(
        {"exam": str(exam.code), "title": exam.title, "sessions": exam_report(exam, site_url=site_url)},
        indent=2,
    )


# A spreadsheet runs a cell that starts with one of these as a formula
# (=HYPERLINK(...) in a candidate's name, say): OWASP's "CSV injection".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """``value``, with a text cell that a spreadsheet would run as a formula
    prefixed by an apostrophe, so that it is shown as the text it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _SafeWriter:
    def __init__(self, out) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row) -> None:
        self._writer.writerow([spreadsheet_safe(cell) for cell in row])


def report_csv(exam: Exam, *, site_url: str = "") -> str:
    """One row per event; a session without events still gets one row. Text
    cells that a spreadsheet would run as formulas are neutralised. The
    ``evidence`` column links to the access-checked evidence view, absolute
    when ``site_url`` (scheme://host) is given."""
    out = io.StringIO()
    writer = _SafeWriter(out)
    writer.writerow(CSV_COLUMNS)
    for s in exam_report(exam, site_url=site_url):
        head = [
            s["candidate"],
            s["email"],
            s["state"],
            s["consented_at"],
            s["started_at"],
            s["finished_at"],
            s["ended"],
            s["risk_score"],
        ]
        if not s["events"]:
            writer.writerow(head + [""] * (len(CSV_COLUMNS) - len(head)))
        for e in s["events"]:
            writer.writerow(
                head
                + [
                    Event.label_of(e["type"]),
                    e["type"],
                    e["severity"],
                    e["started_at"],
                    e["ended_at"],
                    e["confidence"],
                    e["review_status"],
                    e["evidence_url"] or "",
                ]
            )
    return out.getvalue()
