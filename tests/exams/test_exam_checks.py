"""An exam's checks config is validated before it is saved, so one bad value
cannot make every analysis of the exam fail."""

import pytest
from django.core.exceptions import ValidationError

from detection.core import CheckConfig


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ({"identity_treshold": 0.5}, "Unknown key 'identity_treshold'"),
        ({"identity_threshold": "0.5"}, "identity_threshold must be a number"),
        ({"identity_threshold": True}, "identity_threshold must be a number"),
        ({"identity_threshold": 7}, "identity_threshold must be between 0 and 1"),
        ({"yaw_threshold": -5}, "yaw_threshold must be between 1 and 90"),
        ({"enabled": "faces"}, "enabled must be a list of names"),
        ({"enabled": ["faces", "telepathy"]}, "unknown checks: telepathy"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_it_refuses_a_bad_checks_config(exam, checks, message):
    exam.checks = checks
    with pytest.raises(ValidationError, match=message):
        exam.full_clean()


@pytest.mark.django_db
def test_it_accepts_the_default_and_a_partial_config(exam):
    exam.checks = CheckConfig().to_dict()
    exam.full_clean()
    exam.checks = {"identity_threshold": 0.45, "enabled": ["faces"]}
    exam.full_clean()


@pytest.mark.django_db
def test_it_moves_exams_on_the_old_looking_away_defaults_and_keeps_chosen_values(exam):
    import importlib

    from django.apps import apps

    from exams.models import Exam

    migration = importlib.import_module("exams.migrations.0014_looking_away_defaults")
    old_defaults = {**CheckConfig().to_dict(), "yaw_threshold": 30.0, "looking_away_seconds": 4.0}
    Exam.objects.filter(pk=exam.pk).update(checks=old_defaults)
    chosen = Exam.objects.create(
        title="Chosen", checks={**old_defaults, "yaw_threshold": 25.0}, duration_minutes=60
    )

    migration.forwards(apps, None)

    exam.refresh_from_db()
    chosen.refresh_from_db()
    assert (exam.checks["yaw_threshold"], exam.checks["looking_away_seconds"]) == (45.0, 6.0)
    assert exam.checks["identity_threshold"] == old_defaults["identity_threshold"]
    assert (chosen.checks["yaw_threshold"], chosen.checks["looking_away_seconds"]) == (25.0, 4.0)
