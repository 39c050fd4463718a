"""Session reports of an exam, for the export command and the review page.

``data`` gathers what a report says; ``text`` writes it as JSON or CSV, ``pdf``
as a printable PDF. Each format module depends on ``data`` only.
"""

from __future__ import annotations

from exams.models import Exam
from exams.reports.data import exam_report, exam_sessions, proctor_action_rows
from exams.reports.text import report_csv, report_json

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}

__all__ = [
    "FORMATS",
    "exam_report",
    "exam_sessions",
    "proctor_action_rows",
    "report_csv",
    "report_json",
    "report_render",
]


def report_render(exam: Exam, fmt: str, *, site_url: str = "") -> bytes:
    """The report in one of FORMATS, as bytes ready to write or send; links in
    it are absolute when ``site_url`` (scheme://host) is given."""
    if fmt == "json":
        return report_json(exam, site_url=site_url).encode("utf-8")
    if fmt == "csv":
        return report_csv(exam, site_url=site_url).encode("utf-8")
    if fmt == "pdf":
        # Not a hidden cycle (pdf imports only data): reportlab loads only when a PDF is asked for.
        from exams.reports.pdf import report_pdf

        return report_pdf(exam)
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
