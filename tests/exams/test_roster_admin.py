"""Roster import and reference photos in the admin (the browser page itself is in tests/e2e)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from exams.models import AuditEntry, Candidate
from tests.conftest import photo_bytes
from tests.exams.test_commands import _two_faces_jpeg


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _csv(text: str, name: str = "roster.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def _photo(name: str, data: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(
        name, data if data is not None else photo_bytes(name), content_type="image/jpeg"
    )


@pytest.mark.django_db
def test_the_exam_page_offers_the_import(registrar, exam):
    client = _client(registrar)
    change = client.get(f"/admin/exams/exam/{exam.pk}/change/")
    assert f"/admin/exams/exam/{exam.pk}/roster/".encode() in change.content
    page = client.get(f"/admin/exams/exam/{exam.pk}/roster/")
    assert (
        page.status_code == 200
        and b"name,email,photo" in page.content
        and b"roster_import.js" in page.content
    )


@pytest.mark.django_db
def test_it_parses_the_csv_or_says_why_not(registrar, exam):
    url = f"/admin/exams/exam/{exam.pk}/roster/parse"
    client = _client(registrar)
    good = client.post(
        url,
        {
            "csv": _csv(
                "\ufeffname,email,photo\n"
                "Barack Obama, Barack@Example.org ,obama.jpg\n"
                "No Photo,np@example.org,\n"
            )
        },
    )
    assert good.json()["rows"] == [
        {"line": 2, "name": "Barack Obama", "email": "Barack@Example.org", "photo": "obama.jpg"},
        {"line": 3, "name": "No Photo", "email": "np@example.org", "photo": ""},
    ]
    refusals = {
        "name,email\nA,a@example.org\n": "lacks column(s): photo",
        "name,email,photo\n": "no rows",
    }
    for text, reason in refusals.items():
        response = client.post(url, {"csv": _csv(text)})
        assert response.status_code == 400 and reason in response.json()["error"]
    latin1 = SimpleUploadedFile("r.csv", "name,email,photo\nJosé,j@example.org,\n".encode("latin-1"))
    assert "not UTF-8" in client.post(url, {"csv": latin1}).json()["error"]
    assert client.post(url, {}).status_code == 400
    assert not Candidate.objects.exists()


@pytest.mark.django_db
def test_it_imports_row_by_row_and_explains_bad_rows(registrar, exam):
    url = f"/admin/exams/exam/{exam.pk}/roster/row"
    client = _client(registrar)

    obama = client.post(
        url, {"name": "Barack Obama", "email": "Barack@example.org", "photo": _photo("obama.jpg")}
    ).json()
    assert obama["error"] == "" and obama["photo"] is True
    candidate = Candidate.objects.get(email="barack@example.org")
    assert obama["link"] == f"http://testserver{candidate.link_path()}"
    assert len(candidate.reference_encodings) == 1 and candidate.reference_photo and candidate.session

    again = client.post(
        url, {"name": "Barack Obama", "email": "barack@example.org", "photo": _photo("obama.jpg")}
    ).json()
    assert again["link"] == obama["link"]  # a retried row changes nothing

    no_photo = client.post(url, {"name": "No Photo", "email": "np@example.org"}).json()
    assert no_photo["error"] == "" and no_photo["photo"] is False

    bad = {
        "two faces": (
            {"name": "Two", "email": "two@example.org", "photo": _photo("two.jpg", _two_faces_jpeg())},
            "2 faces",
        ),
        "no image": (
            {"name": "Wall", "email": "wall@example.org", "photo": _photo("wall.jpg", b"not a picture")},
            "photo wall.jpg",
        ),
        "bad email": (
            {"name": "Bad", "email": "not-an-email", "photo": _photo("biden.jpg")},
            "not a valid email",
        ),
        "no name": ({"name": " ", "email": "anon@example.org"}, "name is empty"),
    }
    for case, (data, reason) in bad.items():
        result = client.post(url, data)
        assert result.status_code == 200, case
        assert reason in result.json()["error"] and not result.json()["link"], case

    assert sorted(Candidate.objects.values_list("email", flat=True)) == [
        "barack@example.org",
        "np@example.org",
    ]
    assert AuditEntry.objects.filter(action="roster_row_import", actor=registrar).count() == 7


@pytest.mark.django_db
def test_only_staff_with_the_permission_may_import(proctor, registrar, exam):
    from django.contrib.auth.models import Permission

    url = f"/admin/exams/exam/{exam.pk}/roster/"
    assert Client().get(url).status_code == 302  # anonymous: to the admin login
    assert _client(proctor).get(url).status_code == 302  # not staff: to the admin login
    registrar.user_permissions.remove(Permission.objects.get(codename="add_candidate"))
    assert _client(registrar).get(url).status_code == 403
    assert _client(registrar).post(f"{url}row", {"name": "X", "email": "x@example.org"}).status_code == 403
    assert not Candidate.objects.exists()


@pytest.mark.django_db
def test_a_photo_added_in_the_admin_is_encoded_or_refused(registrar, exam):
    client = _client(registrar)
    form = {"exam": exam.pk, "name": "Joe Biden", "email": "joe@example.org", "external_id": ""}
    refused = client.post(
        "/admin/exams/candidate/add/", {**form, "reference_photo": _photo("two.jpg", _two_faces_jpeg())}
    )
    assert refused.status_code == 200 and b"2 faces" in refused.content
    assert not Candidate.objects.exists()

    client.post("/admin/exams/candidate/add/", {**form, "reference_photo": _photo("biden.jpg")})
    joe = Candidate.objects.get(email="joe@example.org")
    assert len(joe.reference_encodings) == 1 and joe.reference_encodings[0] and joe.session.state == "invited"
