"""An honest re-import: what is new, what was already on the exam, what was
refused; and an email already on the exam under another name is refused."""

import csv
import io
import json

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from exams.models import AuditEntry, Candidate

pytestmark = pytest.mark.django_db


def _roster(tmp_path, rows, name="roster.csv"):
    path = tmp_path / name
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([("name", "email", "photo"), *rows])
    return path


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


FIVE_GOOD = [(f"Person {i}", f"p{i}@example.org", "") for i in range(5)]
FIVE_BAD = [(f"Bad {i}", f"not-an-email-{i}", "") for i in range(5)]


def test_it_says_a_second_run_added_nothing(exam, tmp_path, settings):
    settings.SITE_URL = "http://proctor.example.edu"
    path = _roster(tmp_path, FIVE_GOOD + FIVE_BAD)
    first = _run("import_roster", str(exam.code), str(path))
    assert first.splitlines()[-1] == "5 new, 0 already on the exam, 5 refused"
    second = _run("import_roster", str(exam.code), str(path))
    assert second.splitlines()[-1] == "0 new, 5 already on the exam, 5 refused"
    assert "p0@example.org>: http://" in second and "(already on the exam, unchanged)" in second
    assert Candidate.objects.filter(exam=exam).count() == 5
    last = AuditEntry.objects.filter(action="roster_import").latest("pk").details
    assert (last["new"], last["existing"], last["errors"]) == (0, 5, 5)


def test_it_refuses_an_email_already_on_the_exam_under_another_name(exam, candidate, tmp_path):
    path = _roster(
        tmp_path, [("Michelle Obama", "BARACK@example.org", ""), ("barack  OBAMA", "barack@example.org", "")]
    )
    rows = json.loads(_run("import_roster", str(exam.code), str(path), "--json"))
    assert rows[0]["status"] == "refused" and rows[0]["link"] == ""
    assert "already on this exam under the name 'Barack Obama'" in rows[0]["error"]
    # The same name, spelled with other case and spacing, is the same person.
    assert rows[1]["status"] == "existing" and rows[1]["link"].endswith(candidate.link_path())
    assert Candidate.objects.get(exam=exam, email="barack@example.org").name == "Barack Obama"


def test_the_admin_row_import_reports_new_existing_and_collisions(registrar, exam, candidate):
    client = Client()
    client.force_login(registrar)
    url = f"/admin/exams/exam/{exam.pk}/roster/row"
    new = client.post(url, {"name": "Eileen Collins", "email": "eileen@example.org"}).json()
    same = client.post(url, {"name": "Barack Obama", "email": "barack@example.org"}).json()
    other = client.post(url, {"name": "Someone Else", "email": "barack@example.org"}).json()
    assert (new["status"], same["status"], other["status"]) == ("new", "existing", "refused")
    assert same["link"].endswith(candidate.link_path()) and other["link"] == ""
    assert "already on this exam under the name" in other["error"]


def test_it_emails_invitations_to_the_candidates_it_added(exam, candidate, tmp_path, settings):
    settings.SITE_URL = "https://proctor.example.edu"
    path = _roster(
        tmp_path, [("Barack Obama", "barack@example.org", ""), ("Eileen Collins", "eileen@example.org", "")]
    )
    out = _run("import_roster", str(exam.code), str(path), "--send-invitations")
    assert "1 invitation sent" in out
    assert [m.to for m in mail.outbox] == [["Eileen Collins <eileen@example.org>"]]
    eileen = Candidate.objects.get(email="eileen@example.org")
    assert f"https://proctor.example.edu{eileen.link_path()}" in mail.outbox[0].body
    assert AuditEntry.objects.filter(action="invitation_sent", session=eileen.session).exists()
