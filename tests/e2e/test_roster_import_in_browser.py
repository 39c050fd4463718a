"""The exams office imports a roster in the admin, in Chromium against daphne and PostgreSQL."""

from __future__ import annotations

import csv
import shutil

import pytest
from playwright.sync_api import expect

from tests.conftest import PHOTOS
from tests.e2e.conftest import PHONE, SCREENSHOTS
from tests.exams.test_commands import _two_faces_jpeg

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_the_registrar_imports_a_roster_and_sees_each_row_land(browsers, clips, registrar, exam, tmp_path):
    from exams.models import Candidate

    shutil.copy(PHOTOS / "obama.jpg", tmp_path / "obama.jpg")
    (tmp_path / "two.jpg").write_bytes(_two_faces_jpeg())
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "email", "photo"])
        writer.writerow(["Barack Obama", "barack@example.org", "obama.jpg"])
        writer.writerow(["Joe Biden", "joe@example.org", "biden.jpg"])  # the registrar forgets to select it
        writer.writerow(["Two People", "two@example.org", "two.jpg"])
        writer.writerow(["Eileen Collins", "eileen@example.org", ""])
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("full name,mail\nBarack Obama,barack@example.org\n")

    page = browsers.login(browsers.launch(clips["alone"]), "registrar")
    page.goto(f"/admin/exams/exam/{exam.pk}/change/")
    page.get_by_role("link", name="Import roster").click()
    expect(page.get_by_role("heading", name="Import roster: Algebra final")).to_be_visible()

    # A CSV without the right columns is refused whole, and nothing is imported.
    page.get_by_label("Roster CSV").set_input_files(wrong)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#roster-error")).to_contain_text("lacks column(s): email, name, photo")
    expect(page.locator("#roster-error")).to_contain_text("Nothing was imported.")

    page.get_by_label("Roster CSV").set_input_files(roster)
    page.get_by_label("Reference photos").set_input_files([tmp_path / "obama.jpg", tmp_path / "two.jpg"])
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#roster-status")).to_have_text(
        "Done: 2 new, 0 already on the exam, 2 refused "
        "(the reasons are listed below; fix them and import the file again).",
        timeout=60_000,
    )
    expect(page.locator("#roster-bar")).to_have_attribute("value", "4")
    expect(page.locator("#roster-error")).to_be_hidden()

    rows = page.locator("#roster-results tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text("invitation link")
    expect(rows.nth(1)).to_contain_text("photo biden.jpg was not among the selected photos")
    expect(rows.nth(2)).to_contain_text("2 faces")
    expect(rows.nth(3)).to_contain_text("no photo: reference taken at the exam")
    link = rows.nth(0).get_by_role("link").get_attribute("href")
    barack = Candidate.objects.get(email="barack@example.org")
    assert link.endswith(barack.link_path()) and len(barack.reference_encodings) == 1
    assert sorted(Candidate.objects.values_list("email", flat=True)) == [
        "barack@example.org",
        "eileen@example.org",
    ]

    with page.expect_download() as download:
        page.get_by_role("link", name="Download links and errors (CSV)").click()
    saved = list(csv.DictReader(open(download.value.path(), newline="")))
    assert [r["email"] for r in saved] == [
        "barack@example.org",
        "joe@example.org",
        "two@example.org",
        "eileen@example.org",
    ]
    assert saved[0]["link"] == link and "2 faces" in saved[2]["error"]

    page.screenshot(path=SCREENSHOTS / "roster-import.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=SCREENSHOTS / "roster-import-phone.png", full_page=True)

    # The same file again adds nothing, and says so.
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#roster-status")).to_have_text(
        "Done: 0 new, 2 already on the exam, 2 refused "
        "(the reasons are listed below; fix them and import the file again).",
        timeout=60_000,
    )
    expect(rows.nth(0)).to_contain_text("already on the exam, unchanged")
    assert Candidate.objects.count() == 2
    # Chromium logs the refused CSV's 400 as a failed resource; nothing else may go wrong.
    assert [e for e in browsers.errors if "status of 400" not in e or "/roster/parse" not in e] == []
    assert len(browsers.errors) == 1
