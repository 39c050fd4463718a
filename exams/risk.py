"""An explained risk score for a session: every point comes with its reason."""

from __future__ import annotations

from dataclasses import dataclass

from exams.models import Event

WEIGHTS = {"high": 30, "medium": 15, "low": 5}
# What an event means when its name alone does not say it, appended to its line.
EXPLANATIONS = {
    "camera_silent": "the page stayed connected but its camera gave no picture the server could analyse",
}


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
        # Merged repeats (a second device trying 30 times) count once, and say how often.
        times = sum(int(e.details.get("count", 1)) for e in items if isinstance(e.details, dict))
        if times > len(items):
            reason += f", {times} times"
        if event_type in EXPLANATIONS:
            reason += f": {EXPLANATIONS[event_type]}"
        lines.append(RiskLine(event_type, len(items), points, reason))
    lines.sort(key=lambda line: -line.points)
    return Risk(min(100, sum(line.points for line in lines)), tuple(lines))
