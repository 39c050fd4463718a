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
