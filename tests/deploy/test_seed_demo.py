"""seed_demo (bin/run runs it with DEMO=1, or on embedded mode's first run) creates the
demo accounts, and never resets the password of an account it did not create."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def demo(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")


@pytest.mark.django_db
def test_it_leaves_an_account_it_did_not_create_as_it_is(demo) -> None:
    from django.contrib.auth import get_user_model

    from exams.models import Exam

    User = get_user_model()
    administrator = User.objects.create_user("admin", password="the-operators-own-1")
    colleague = User.objects.create_user("proctor", password="a-colleagues-own-1")
    out = _seed()
    administrator.refresh_from_db()
    colleague.refresh_from_db()
    assert administrator.check_password("the-operators-own-1") and not administrator.is_superuser
    assert colleague.check_password("a-colleagues-own-1") and not colleague.groups.exists()
    assert "admin: an account of that name already exists with another password; left as it is" in out
    assert "Administrator:  admin (its own password)" in out and "reviewer / demo-password-1" in out
    exam = Exam.objects.get(title="Demo exam")
    assert not exam.proctors.exists(), "someone else's account is not given the demo exam"
    reviewer = User.objects.get(username="reviewer")
    assert reviewer.check_password("demo-password-1") and exam.reviewers.filter(pk=reviewer.pk).exists()


@pytest.mark.django_db
def test_it_keeps_the_password_of_its_own_accounts_when_the_demo_password_changes(demo, monkeypatch) -> None:
    from django.contrib.auth import get_user_model

    _seed()
    monkeypatch.setenv("DEMO_PASSWORD", "another-password-2")
    out = _seed()
    proctor = get_user_model().objects.get(username="proctor")
    assert proctor.check_password("demo-password-1")
    assert "proctor: an account of that name already exists with another password" in out


@pytest.mark.django_db
def test_it_writes_its_generated_password_for_this_user_only(settings, tmp_path, monkeypatch) -> None:
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    out = _seed()
    password_file = tmp_path / "demo_password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert f"proctor / {password_file.read_text().strip()}" in out
