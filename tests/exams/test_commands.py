"""The command-line contracts automation depends on."""

import csv
import io
import json
import shutil

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from exams.models import AuditEntry, Candidate, Event, Exam
from tests.conftest import PHOTOS, photo_bytes


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_creates_staff_with_a_role():
    assert "created proctor alice" in _run(
        "create_staff", "--username", "alice", "--password", "long-enough-1", "--role", "proctor"
    )
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.get(username="alice")
    assert alice.groups.filter(name="Proctor").exists() and alice.check_password("long-enough-1")
    with pytest.raises(CommandError, match="at least 8"):
        _run("create_staff", "--username", "bob", "--password", "short", "--role", "reviewer")


@pytest.mark.django_db
def test_it_creates_an_exam_and_prints_its_code_as_json(proctor):
    data = json.loads(_run("create_exam", "--title", "Physics", "--proctor", "proctor", "--json"))
    exam = Exam.objects.get(code=data["exam"])
    assert exam.title == "Physics" and list(exam.proctors.all()) == [proctor]
    with pytest.raises(CommandError, match="unknown proctor"):
        _run("create_exam", "--title", "Chemistry", "--proctor", "nobody", "--json")


@pytest.fixture
def roster(tmp_path):
    for name in ("obama.jpg", "biden.jpg", "astronaut.png"):
        shutil.copy(PHOTOS / name, tmp_path / name)
    (tmp_path / "two.jpg").write_bytes(_two_faces_jpeg())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    path = tmp_path / "roster.csv"
    rows = [
        ("Barack Obama", "barack@example.org", "obama.jpg"),
        ("Joe Biden", "JOE@example.org", "biden.jpg"),
        ("Two People", "two@example.org", "two.jpg"),
        ("Empty Wall", "wall@example.org", "broken.jpg"),
        ("No Photo", "nophoto@example.org", ""),
        ("Missing File", "missing@example.org", "nope.jpg"),
        ("Bad Email", "not-an-email", "obama.jpg"),
    ]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "email", "photo"])
        writer.writerows(rows)
    return path


def _two_faces_jpeg() -> bytes:
    from tests.detection.detection_photos import jpeg, photo, side_by_side

    return jpeg(side_by_side(photo("obama.jpg"), photo("biden.jpg")))


@pytest.mark.django_db
def test_it_imports_good_rows_and_explains_bad_ones(exam, roster):
    rows = json.loads(_run("import_roster", str(exam.code), str(roster), "--json"))
    by_email = {r["email"]: r for r in rows}
    assert set(rows[0]) == {"name", "email", "link", "error", "status"}
    for ok in ("barack@example.org", "joe@example.org", "nophoto@example.org"):
        assert by_email[ok]["error"] == "" and by_email[ok]["status"] == "new", ok
        assert by_email[ok]["link"].startswith(f"{settings.SITE_URL}/take/"), ok
    assert "2 faces" in by_email["two@example.org"]["error"]
    assert by_email["wall@example.org"]["error"] and by_email["wall@example.org"]["link"] == ""
    assert "not a readable image file in the roster's folder" in by_email["missing@example.org"]["error"]
    assert "not a valid email" in by_email["not-an-email"]["error"]
    assert Candidate.objects.filter(exam=exam).count() == 3
    assert len(Candidate.objects.get(email="barack@example.org").reference_encodings[0]) == 128
    assert Candidate.objects.get(email="nophoto@example.org").reference_encodings == []
    # Importing again changes nothing and reports the same links.
    again = json.loads(_run("import_roster", str(exam.code), str(roster), "--json"))
    assert {r["email"]: r["link"] for r in again if not r["error"]} == {
        r["email"]: r["link"] for r in rows if not r["error"]
    }
    assert {r["status"] for r in again if not r["error"]} == {"existing"}
    assert Candidate.objects.filter(exam=exam).count() == 3


@pytest.mark.django_db
def test_it_refuses_hostile_roster_rows_and_imports_the_rest(exam, tmp_path):
    """Paths out of the roster's folder, a FIFO, over-long values: each row gets the
    same kind of error and the import goes on; nothing tells which files exist."""
    import os

    folder = tmp_path / "roster"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")  # reading it would hang the import
    (tmp_path / "outside.jpg").write_bytes(photo_bytes("obama.jpg"))
    rows = [
        ("Traversal", "t@example.org", "../../../../etc/passwd"),
        ("Absolute", "a@example.org", "/etc/hostname"),
        ("Outside", "o@example.org", "../outside.jpg"),
        ("Fifo", "f@example.org", "pipe.jpg"),
        ("N" * 201, "long-name@example.org", ""),
        ("Long Email", "x" * 250 + "@example.org", ""),
        ("Fine", "fine@example.org", ""),
    ]
    path = folder / "roster.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([("name", "email", "photo"), *rows])
    result = {
        r["email"]: r["error"] for r in json.loads(_run("import_roster", str(exam.code), str(path), "--json"))
    }
    same = "not a readable image file in the roster's folder"
    for email in ("t@example.org", "a@example.org", "o@example.org", "f@example.org"):
        assert same in result[email], email
    assert "longer than 200" in result["long-name@example.org"]
    assert "longer than 254" in result["x" * 250 + "@example.org"]
    assert result["fine@example.org"] == ""
    assert list(Candidate.objects.filter(exam=exam).values_list("email", flat=True)) == ["fine@example.org"]


@pytest.mark.django_db
def test_it_refuses_a_csv_field_over_the_csv_module_limit(exam, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text('name,email,photo\n"' + "x" * 200_000 + '",a@example.org,\n')
    with pytest.raises(CommandError, match="not readable CSV"):
        _run("import_roster", str(exam.code), str(path))


@pytest.mark.django_db
def test_it_refuses_a_roster_without_the_columns(exam, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("full_name,mail\nA,a@example.org\n")
    with pytest.raises(CommandError, match="lacks column"):
        _run("import_roster", str(exam.code), str(path))
    with pytest.raises(CommandError, match="no exam"):
        _run("import_roster", "not-a-code", str(path))


@pytest.mark.django_db
def test_it_exports_every_session_with_its_events(live_session, tmp_path):
    from django.core.files.base import ContentFile
    from django.utils import timezone

    event = Event.objects.create(
        session=live_session,
        type="multiple_faces",
        key="multiple_faces",
        severity="high",
        started_at=timezone.now(),
        ended_at=timezone.now(),
        confidence=0.9,
        is_open=False,
    )
    event.evidence.save("frame.jpg", ContentFile(b"\xff\xd8\xff"))
    report = json.loads(_run("export_report", str(live_session.exam.code), "--format", "json"))
    session = report["sessions"][0]
    assert session["candidate"] == "Barack Obama" and session["state"] == "in_progress"
    assert session["events"][0]["type"] == "multiple_faces" and session["events"][0]["evidence"]
    assert {"started_at", "ended_at", "confidence", "severity"} <= set(session["events"][0])

    out = tmp_path / "report.csv"
    call_command(
        "export_report",
        str(live_session.exam.code),
        "--format",
        "csv",
        "--output",
        str(out),
        stderr=io.StringIO(),
    )
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["Event code"] == "multiple_faces" and rows[0]["Candidate"] == "Barack Obama"
    assert AuditEntry.objects.filter(action="report_export").count() == 2


@pytest.mark.django_db
def test_it_seeds_a_demo_that_can_run_twice(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-1")
    first = _run("seed_demo")
    second = _run("seed_demo")
    assert "proctor / demo-password-1" in first and "admin / demo-password-1" in first
    assert Exam.objects.filter(title="Demo exam").count() == 1
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo-password-1")
    assert first.count("/take/") == second.count("/take/") == 3
    exam = Exam.objects.get(title="Demo exam")
    assert sorted(exam.reviewers.values_list("username", flat=True)) == ["reviewer", "reviewer2"]


@pytest.mark.django_db
def test_it_exports_a_formula_looking_name_as_text(exam):
    from exams import reports
    from tests.conftest import _candidate

    _candidate(exam, '=HYPERLINK("http://evil.example","click")', "evil@example.org")
    _candidate(exam, "-2+3", "minus@example.org")
    rows = list(csv.reader(io.StringIO(reports.report_csv(exam))))
    names = {row[1]: row[0] for row in rows[1:]}
    assert names["evil@example.org"] == '\'=HYPERLINK("http://evil.example","click")'
    assert names["minus@example.org"] == "'-2+3"


@pytest.mark.django_db
def test_it_refuses_photos_that_are_no_regular_file_or_too_large(exam, tmp_path):
    """A folder, or a file over the size limit inside the roster's folder, is refused
    with a row error before it is read; the other rows are imported."""
    folder = tmp_path / "roster"
    (folder / "photos.jpg").mkdir(parents=True)
    with (folder / "big.jpg").open("wb") as fh:
        fh.truncate(10 * 1024 * 1024 + 1)  # the limit, plus one byte
    path = folder / "roster.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(
            [
                ("name", "email", "photo"),
                ("Folder", "dir@example.org", "photos.jpg"),
                ("Big", "big@example.org", "big.jpg"),
                ("Device", "dev@example.org", "../../../../dev/zero"),
                ("Fine", "fine@example.org", ""),
            ]
        )
    result = {
        r["email"]: r["error"] for r in json.loads(_run("import_roster", str(exam.code), str(path), "--json"))
    }
    assert "not a readable image file in the roster's folder" in result["dir@example.org"]
    assert "not a readable image file in the roster's folder" in result["dev@example.org"]
    assert "larger than 10 MB" in result["big@example.org"]
    assert result["fine@example.org"] == ""
    assert list(Candidate.objects.filter(exam=exam).values_list("email", flat=True)) == ["fine@example.org"]


@pytest.mark.django_db
def test_a_row_the_database_would_refuse_never_stops_the_import_halfway(exam, tmp_path):
    """PostgreSQL refuses a NUL character in text. The row is refused when it is
    checked, before anything is written, and the rows after it are imported."""
    path = tmp_path / "roster.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(
            [
                ("name", "email", "photo"),
                ("First", "first@example.org", ""),
                ("Nul\x00Name", "nul@example.org", ""),
                ("Last", "last@example.org", ""),
            ]
        )
    rows = json.loads(_run("import_roster", str(exam.code), str(path), "--json"))
    result = {r["email"]: r["error"] for r in rows}
    assert result["nul@example.org"].startswith("line 3: name contains a control character (NUL)")
    assert result["first@example.org"] == result["last@example.org"] == ""
    assert sorted(Candidate.objects.filter(exam=exam).values_list("email", flat=True)) == [
        "first@example.org",
        "last@example.org",
    ]


@pytest.mark.django_db
def test_every_row_is_checked_with_the_models_validation(exam):
    """candidate_check runs full_clean on an unsaved Candidate and writes nothing."""
    from exams.services import RosterError, candidate_check

    draft = candidate_check(exam=exam, name="Ann", email="ANN@example.org")
    assert draft.email == "ann@example.org" and draft.existing is None
    assert not Candidate.objects.exists()
    with pytest.raises(RosterError, match="not a valid email"):
        candidate_check(exam=exam, name="Ann", email="ann@")
