"""The top bar offers each person the pages their roles open: Live for
proctors, Review for reviewers, and the admin for staff the admin lets in."""

import re

import pytest
from django.test import Client


def _nav(user) -> str:
    client = Client()
    client.force_login(user)
    page = client.get("/", follow=True).content.decode()
    return re.search(r"<nav>(.*?)</nav>", page, re.S).group(1)


def _links(nav: str) -> dict[str, str]:
    return {text: href for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav)}


@pytest.mark.django_db
def test_it_shows_the_admin_to_staff(registrar):
    links = _links(_nav(registrar))
    assert links["Admin"] == "/admin/"
    client = Client()
    client.force_login(registrar)
    assert client.get(links["Admin"]).status_code == 200  # the link leads somewhere they may go


@pytest.mark.django_db
def test_it_shows_a_superuser_every_page(admin_user):
    assert set(_links(_nav(admin_user))) >= {"Live", "Review", "Admin"}


@pytest.mark.django_db
def test_it_keeps_the_admin_from_a_plain_proctor(proctor, reviewer):
    assert _links(_nav(proctor)) == {"Live": "/proctor/"}
    assert _links(_nav(reviewer)) == {"Review": "/review/"}
