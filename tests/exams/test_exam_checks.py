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
def test_it_shows_the_error_in_the_admin_form(admin_client, exam):
    form = {
        "title": exam.title,
        "opens_at_0": exam.opens_at.strftime("%Y-%m-%d"),
        "opens_at_1": exam.opens_at.strftime("%H:%M:%S"),
        "closes_at_0": exam.closes_at.strftime("%Y-%m-%d"),
        "closes_at_1": exam.closes_at.strftime("%H:%M:%S"),
        "duration_minutes": 60,
        "frame_interval": 2.0,
        "retention_days": 30,
        "checks": '{"identity_threshold": 3}',
    }
    page = admin_client.post(f"/admin/exams/exam/{exam.pk}/change/", form)
    assert page.status_code == 200  # the form again, not a redirect
    assert "identity_threshold must be between 0 and 1" in page.content.decode()
    exam.refresh_from_db()
    assert exam.checks == CheckConfig().to_dict()
    form["checks"] = '{"identity_threshold": 0.4}'
    assert admin_client.post(f"/admin/exams/exam/{exam.pk}/change/", form).status_code == 302
    exam.refresh_from_db()
    assert exam.checks == {"identity_threshold": 0.4}
