"""Per-exam check configuration, as plain values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

ALL_CHECKS = ("faces", "identity", "head_pose", "objects", "camera")
PROHIBITED_LABELS = ("cell phone", "book", "laptop", "person")


@dataclass(frozen=True)
class CheckConfig:
    """Which checks run and where their thresholds sit.

    ``identity_threshold`` is the largest face-encoding distance still accepted
    as the same person. face_recognition's default of 0.6 is loose; 0.5 is the
    value calibrated by ``python -m detection evaluate`` (see docs/detection.md).
    """

    enabled: tuple[str, ...] = ALL_CHECKS
    identity_threshold: float = 0.5
    # looking_away starts once the head is turned past a threshold on every frame for
    # ``looking_away_seconds``, and ends when it is back within the threshold less
    # ``pose.RELEASE_MARGIN`` (10 degrees). 45 degrees of yaw is well past reading: the
    # committed near-frontal portraits read up to 30 (obama2.jpg, turned perhaps 15-20
    # degrees), 36 in a browser exam, see pose.py and docs/detection.md.
    yaw_threshold: float = 45.0  # degrees either side
    pitch_threshold: float = 25.0  # degrees up or down
    prohibited_labels: tuple[str, ...] = PROHIBITED_LABELS
    object_min_score: float = 0.5
    looking_away_seconds: float = 6.0  # three frames at 2 s: a glance at notes is not a turn

    def is_enabled(self, check: str) -> bool:
        return check in self.enabled

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["enabled"] = list(self.enabled)
        data["prohibited_labels"] = list(self.prohibited_labels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CheckConfig:
        """Build from stored JSON, ignoring unknown keys and refusing bad values."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key in ("enabled", "prohibited_labels"):
                value = tuple(str(v) for v in value)
                if key == "enabled":
                    unknown = set(value) - set(ALL_CHECKS)
                    if unknown:
                        raise ValueError(f"unknown checks: {', '.join(sorted(unknown))}")
            else:
                value = float(value)
                if not (0 <= value <= 180):
                    raise ValueError(f"{key} out of range: {value}")
            kwargs[key] = value
        return cls(**kwargs)
