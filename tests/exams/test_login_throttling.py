"""Login throttling (django-axes) on the staff sign-in page and the admin's."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

PASSWORD = "correct-horse-1"  # the named actors' password in tests/conftest.py
PAGES = ["/accounts/login/", "/admin/login/"]


def _sign_in(client: Client, page: str, username: str, password: str, **extra):
    return client.post(page, {"username": username, "password": password, "next": "/"}, **extra)


def _fail_until_locked(client: Client, page: str, username: str, **extra):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = _sign_in(client, page, username, "wrong-password", **extra)
    return response


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser(username="admin", password=PASSWORD)


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_it_refuses_the_right_password_after_too_many_wrong_ones(admin_user, page):
    client = Client()
    locked = _fail_until_locked(client, page, "admin")
    assert locked.status_code == 429
    response = _sign_in(client, page, "admin", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert b"Sign-in paused" in response.content
    assert f"After {settings.AXES_FAILURE_LIMIT} wrong passwords".encode() in response.content
    assert b"for 30 minutes" in response.content  # AXES_COOLOFF_MINUTES' default


@pytest.mark.django_db
def test_it_signs_in_with_fewer_wrong_passwords_than_the_limit(admin_user):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, PAGES[0], "admin", "wrong-password").status_code == 200
    assert _sign_in(client, PAGES[0], "admin", PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(admin_user.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("command", [["axes_reset"], ["axes_reset_username", "admin"]])
def test_it_lets_an_administrator_unlock_an_account(admin_user, command):
    client = Client()
    _fail_until_locked(client, PAGES[1], "admin")
    assert _sign_in(client, PAGES[1], "admin", PASSWORD).status_code == 429
    call_command(*command)
    assert _sign_in(client, PAGES[1], "admin", PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(admin_user.pk)


@pytest.mark.django_db
def test_it_lists_lockouts_in_the_admin_for_an_administrator_to_delete(admin_user):
    from axes.models import AccessAttempt

    _fail_until_locked(Client(), PAGES[0], "admin")
    attempt = AccessAttempt.objects.get(username="admin")
    staff = Client()
    staff.force_login(admin_user)
    assert staff.get("/admin/axes/accessattempt/").status_code == 200
    staff.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert not AccessAttempt.objects.exists()
    assert _sign_in(Client(), PAGES[0], "admin", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_it_locks_a_username_from_one_address_only(admin_user, settings):
    """Behind the proxy the address is X-Forwarded-For's last entry: the attacker's
    address is locked, the administrator's own is not, and a forged first entry
    does not move the attacker to another address."""
    settings.BEHIND_PROXY = True
    attacker = {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    _fail_until_locked(Client(), PAGES[0], "admin", **attacker)
    forged = {"HTTP_X_FORWARDED_FOR": "203.0.113.99, 198.51.100.7"}
    assert _sign_in(Client(), PAGES[0], "admin", PASSWORD, **forged).status_code == 429
    elsewhere = {"HTTP_X_FORWARDED_FOR": "192.0.2.10"}
    assert _sign_in(Client(), PAGES[0], "admin", PASSWORD, **elsewhere).status_code == 302
