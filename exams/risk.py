"""An explained risk score for a session: every point comes with its reason."""

from __future__ import annotations

from dataclasses import dataclass

from exams.models import Event

WEIGHTS = {"high": 30, "medium": 15, "low": 5}


@dataclass(frozen=True)
class RiskLine:
    event_type: str
    count: int
    points: int
    reason: str


@dataclass(frozen=True)
class Risk:
    score: int  # 0..100
    lines: tuple[RiskLine, ...]


def risk_of(events) -> Risk:
    """Dismissed events count for nothing; each other event adds its severity's
    weight times its confidence, and the total is capped at 100."""
    grouped: dict[str, list] = {}
    for event in events:
        if event.review_status == Event.Review.DISMISSED:
            continue
        grouped.setdefault(event.type, []).append(event)
    lines = []
    for event_type, items in grouped.items():
        points = round(sum(WEIGHTS[e.severity] * min(1.0, max(0.0, e.confidence)) for e in items))
        seconds = sum(e.duration_seconds for e in items)
        severity = items[0].severity
        reason = (
            f"{len(items)} × {Event.label_of(event_type)} ({severity},"
            f" {WEIGHTS[severity]} points each at full confidence"
        )
        reason += f", {seconds:.0f} s in total)" if seconds else ")"
        lines.append(RiskLine(event_type, len(items), points, reason))
    lines.sort(key=lambda line: -line.points)
    return Risk(min(100, sum(line.points for line in lines)), tuple(lines))
