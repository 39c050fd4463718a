"""Styled error pages with a way back, and a navigation that offers only what a role may open."""

import pytest
from django.test import Client
from django.urls import include, path

from exams.models import Exam

pytestmark = pytest.mark.django_db


def _client(user=None) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", _boom), path("", include("proctor.urls"))]


def test_it_styles_the_404_page_with_a_way_back(outsider, settings):
    settings.DEBUG = False
    response = _client(outsider).get("/no/such/page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "This page does not exist" in html and "css/app.css" in html
    assert 'href="/">Go to the start page' in html.replace('class="button primary" ', "")


def test_it_styles_the_403_page_for_a_role_that_may_not_open_it(reviewer, settings):
    settings.DEBUG = False
    response = _client(reviewer).get("/proctor/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "You may not open this page" in html and "(reviewer)" in html
    assert "Go to the start page" in html


def test_it_styles_the_500_page_without_the_database_or_a_request(settings, django_assert_num_queries):
    settings.DEBUG = False
    settings.ROOT_URLCONF = "tests.exams.test_error_pages"
    with django_assert_num_queries(0):
        response = _client().get("/boom/")
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on the server" in html and 'href="/"' in html and "css/app.css" in html


@pytest.mark.parametrize(
    ("actor", "page", "live", "review"),
    [
        ("proctor", "/proctor/", True, False),
        ("reviewer", "/review/", False, True),
        ("outsider", "/", False, False),
    ],
)
def test_it_shows_only_the_links_a_role_may_open(request, actor, page, live, review, exam):
    user = request.getfixturevalue(actor)
    html = _client(user).get(page).content.decode()
    nav = html.split("<nav>", 1)[1].split("</nav>", 1)[0]
    assert ('href="/proctor/">Live' in nav) is live
    assert ('href="/review/">Review' in nav) is review
    assert "Sign out" in nav


def test_it_shows_both_links_to_someone_with_both_roles(proctor, exam):
    from django.contrib.auth.models import Group

    proctor.groups.add(Group.objects.get_or_create(name="Reviewer")[0])
    nav = _client(proctor).get(f"/proctor/exams/{exam.code}/live").content.decode()
    assert 'href="/proctor/">Live' in nav and 'href="/review/">Review' in nav
    assert Exam.objects.count() == 1
