"""The exam's admin form: a field per check and threshold (no raw JSON), stored
back into Exam.checks, and a proctors list that offers only proctors."""

import pytest
from django.test import Client

from detection.core import CheckConfig
from exams.admin_forms import ExamForm
from exams.models import Exam

pytestmark = pytest.mark.django_db


def _data(exam: Exam, **changes) -> dict:
    data = {
        "title": exam.title,
        "instructions": "",
        "external_url": "",
        "opens_at_0": exam.opens_at.strftime("%Y-%m-%d"),
        "opens_at_1": exam.opens_at.strftime("%H:%M:%S"),
        "closes_at_0": exam.closes_at.strftime("%Y-%m-%d"),
        "closes_at_1": exam.closes_at.strftime("%H:%M:%S"),
        "duration_minutes": "60",
        "frame_interval": "2.0",
        "retention_days": "30",
        "proctors": [p.pk for p in exam.proctors.all()],
        "check_enabled": ["faces", "identity", "objects"],
        "check_prohibited_labels": ["cell phone", "book"],
        "check_identity_threshold": "0.45",
        "check_yaw_threshold": "35",
        "check_pitch_threshold": "20",
        "check_looking_away_seconds": "6",
        "check_object_min_score": "0.6",
    }
    data.update(changes)
    return data


def _admin(superuser_client_user) -> Client:
    client = Client()
    client.force_login(superuser_client_user)
    return client


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.org", "correct-horse-1")


def test_it_shows_a_field_per_check_and_no_json_box(admin_user, exam):
    html = _admin(admin_user).get(f"/admin/exams/exam/{exam.pk}/change/").content.decode()
    assert 'name="checks"' not in html
    for name in (
        "identity_threshold",
        "yaw_threshold",
        "pitch_threshold",
        "looking_away_seconds",
        "object_min_score",
    ):
        assert f'name="check_{name}"' in html, name
    assert 'name="check_enabled"' in html and 'name="check_prohibited_labels"' in html
    assert "0.5 is calibrated on the evaluation set" in html  # help texts


def test_it_stores_the_fields_back_into_the_checks_json(admin_user, exam):
    response = _admin(admin_user).post(f"/admin/exams/exam/{exam.pk}/change/", _data(exam))
    assert response.status_code == 302, response.content.decode()[:2000]
    exam.refresh_from_db()
    assert exam.check_config() == CheckConfig(
        enabled=("faces", "identity", "objects"),
        prohibited_labels=("cell phone", "book"),
        identity_threshold=0.45,
        yaw_threshold=35.0,
        pitch_threshold=20.0,
        looking_away_seconds=6.0,
        object_min_score=0.6,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"check_identity_threshold": "0.9"}, "check_identity_threshold"),
        ({"check_yaw_threshold": "-5"}, "check_yaw_threshold"),
        ({"check_object_min_score": "abc"}, "check_object_min_score"),
        ({"check_enabled": ["faces", "telepathy"]}, "check_enabled"),
        ({"check_prohibited_labels": []}, "check_prohibited_labels"),
    ],
)
def test_it_refuses_bad_values_with_a_reason(exam, changes, field):
    form = ExamForm(data=_data(exam, **changes), instance=exam)
    assert not form.is_valid() and field in form.errors, form.errors


def test_it_starts_from_the_stored_checks(exam):
    exam.checks = CheckConfig(identity_threshold=0.42, enabled=("faces",)).to_dict()
    exam.save(update_fields=["checks"])
    form = ExamForm(instance=exam)
    assert form.initial["check_identity_threshold"] == 0.42 and form.initial["check_enabled"] == ["faces"]


def test_it_offers_only_proctors(exam, proctor, other_proctor, reviewer, outsider):
    offered = set(ExamForm(instance=exam).fields["proctors"].queryset)
    assert offered == {proctor, other_proctor}
    form = ExamForm(data=_data(exam, proctors=[proctor.pk, reviewer.pk]), instance=exam)
    assert not form.is_valid() and "proctors" in form.errors


def test_it_creates_an_exam_with_its_checks_from_the_add_page(admin_user, exam, proctor):
    client = _admin(admin_user)
    page = client.get("/admin/exams/exam/add/").content.decode()
    assert 'name="check_identity_threshold" value="0.5"' in page  # the defaults, as fields
    response = client.post("/admin/exams/exam/add/", _data(exam, title="Geometry", proctors=[proctor.pk]))
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Exam.objects.get(title="Geometry")
    assert created.check_config().identity_threshold == 0.45 and list(created.proctors.all()) == [proctor]
