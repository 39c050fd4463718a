"""The smaller privacy findings: control characters in roster names, one bad
address in an invitation batch, and the proctor's view of the reference photo."""

import csv
import json

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.test import Client

from exams import services
from exams.models import AuditEntry, Candidate
from tests.conftest import _candidate, photo_bytes
from tests.exams.test_commands import _run


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("Ada\tLovelace", "tab"),
        ("Ada\nLovelace", "line break"),
        ("Ada\x1bLovelace", "U+001B"),
        ("Ada \u202eecalevol", "U+202E"),  # shows as "Ada lovelace" reversed
        ("Ada\u2028Lovelace", "U+2028"),
    ],
)
def test_the_web_import_refuses_a_control_character_in_a_name(registrar, exam, name, named):
    url = f"/admin/exams/exam/{exam.pk}/roster/row"
    row = _login(registrar).post(url, {"name": name, "email": "ada@example.org"}).json()
    assert row["status"] == "refused"
    assert row["error"] == (
        f"name contains a control character ({named}); a name or address is one line of plain text"
    )
    assert not Candidate.objects.filter(email="ada@example.org").exists()


@pytest.mark.django_db
def test_the_cli_import_refuses_it_too_and_imports_the_others(exam, tmp_path):
    path = tmp_path / "roster.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(
            [
                ("name", "email", "photo"),
                ("Grace Hopper", "grace@example.org", ""),
                ("Bad\x07Bell", "bell@example.org", ""),
                ("Zoë Ñúñez-Ō'Brien", "zoe@example.org", ""),  # letters of any script are fine
            ]
        )
    rows = json.loads(_run("import_roster", str(exam.code), str(path), "--json"))
    result = {r["email"]: r["error"] for r in rows}
    assert result["bell@example.org"].startswith("line 3: name contains a control character (U+0007)")
    assert result["grace@example.org"] == result["zoe@example.org"] == ""
    assert sorted(Candidate.objects.values_list("email", flat=True)) == [
        "grace@example.org",
        "zoe@example.org",
    ]


@pytest.mark.django_db
def test_one_bad_address_never_stops_an_invitation_batch(exam, candidate, settings, monkeypatch):
    """Rows stored before today's roster rules (or edited in the admin) may hold
    an address no email can carry; the mail backend may refuse one (Django's SMTP
    backend raises ValueError for an address it cannot encode). Each is that
    row's problem, recorded for it; the others are sent."""
    from django.core.mail.backends.locmem import EmailBackend

    settings.SITE_URL = "https://proctor.example.edu"
    invalid = _candidate(exam, "Ivy Invalid", "ivy@example.org")
    Candidate.objects.filter(pk=invalid.pk).update(email="ivy at example dot org")
    broken = _candidate(exam, "Bob Broken", "bob@example.org")
    Candidate.objects.filter(pk=broken.pk).update(name="Bob\r\nBcc: everyone@example.org")
    refused = _candidate(exam, "Rita Refused", "rita@example.org")
    last = _candidate(exam, "Lena Last", "lena@example.org")
    real = EmailBackend.send_messages

    def refuse_rita(self, messages):  # the outside world: the SMTP backend's own check
        if "rita@example.org" in messages[0].to[0]:
            raise ValueError("Invalid address")
        return real(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", refuse_rita)
    batch = Candidate.objects.filter(exam=exam).order_by("pk")
    result = services.invitations_send(candidates=batch, actor_label="cli")

    assert sorted(result.sent) == ["barack@example.org", "lena@example.org"]
    assert dict(result.skipped) == {
        "ivy at example dot org": "not a valid email address",
        "bob@example.org": "the name contains a control character",
        "rita@example.org": "the address cannot be used in an email",
    }
    assert sorted(m.to[0] for m in mail.outbox) == [
        "Barack Obama <barack@example.org>",
        "Lena Last <lena@example.org>",
    ]
    not_sent = AuditEntry.objects.filter(action="invitation_not_sent")
    assert {e.details["candidate"] for e in not_sent} == {invalid.pk, broken.pk, refused.pk}
    assert {e.details["candidate"] for e in AuditEntry.objects.filter(action="invitation_sent")} == {
        candidate.pk,
        last.pk,
    }


@pytest.mark.django_db
def test_the_proctor_compares_the_live_picture_with_the_reference(
    live_session, proctor, other_proctor, outsider
):
    candidate = live_session.candidate
    url = f"/proctor/sessions/{live_session.public_id}/reference.jpg"
    page_url = f"/proctor/sessions/{live_session.public_id}/"
    page = _login(proctor).get(page_url).content.decode()
    assert "No reference photo" in page and url not in page

    candidate.reference_photo.save("obama.jpg", ContentFile(photo_bytes("obama.jpg")))
    candidate.reference_unverified = True
    candidate.save(update_fields=["reference_unverified"])
    page = _login(proctor).get(page_url).content.decode()
    assert f'src="{url}"' in page and 'id="session-picture"' in page, "side by side"
    assert 'alt="Reference photo of Barack Obama"' in page
    assert '<span class="pill">unverified</span>' in page

    response = _login(proctor).get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == photo_bytes("obama.jpg")
    assert response["Cache-Control"] == "no-store"
    [viewed] = AuditEntry.objects.filter(action="reference_view")
    assert viewed.actor == proctor and viewed.session == live_session
    assert viewed.details == {"unverified": True}
    _login(proctor).get(url)
    assert AuditEntry.objects.filter(action="reference_view").count() == 1, "once per viewer per 10 min"

    assert _login(other_proctor).get(url).status_code == 404, "not their exam"
    assert _login(outsider).get(url).status_code == 403
    assert AuditEntry.objects.filter(action="reference_view").count() == 1, "a refusal is no view"
