"""The proctor compares faces: the candidate's reference photo beside the live
picture on the session page, in Chromium against daphne, PostgreSQL and Redis."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from tests.conftest import advance, photo_bytes
from tests.e2e.conftest import PHONE, wait_for_js
from tests.e2e.test_proctor_grid_in_browser import _picture

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


LOADED = (
    "(sel) => { const img = document.querySelector(sel); "
    "return !!img && !img.hidden && img.complete && img.naturalWidth > 0; }"
)


def test_the_proctor_sees_the_reference_photo_beside_the_live_picture(browsers, clips, candidate, proctor):
    from django.utils import timezone

    from exams.models import AuditEntry

    session = candidate.session
    advance(session, "consented", "verified", "in_progress")
    candidate.reference_photo.save("obama.jpg", ContentFile(photo_bytes("obama.jpg")))
    candidate.reference_unverified = True
    candidate.save(update_fields=["reference_unverified"])
    session.last_frame_at = timezone.now()
    session.save(update_fields=["last_frame_at"])
    _picture(session)  # the latest live picture, kept as a worker keeps it

    page = browsers.login(browsers.launch(clips["alone"]), "proctor")
    page.goto(f"/proctor/sessions/{session.public_id}/")
    expect(page.locator("#proctor-session")).to_have_attribute("data-live", "1")
    reference = "#session-reference img"
    wait_for_js(page, LOADED, "#session-picture")
    wait_for_js(page, LOADED, reference)
    expect(page.locator("#session-reference figcaption")).to_have_text("Reference photo unverified")
    # Side by side on a laptop screen, both fully in view.
    live_box = page.locator("#session-picture").bounding_box()
    ref_box = page.locator(reference).bounding_box()
    assert ref_box["x"] >= live_box["x"] + live_box["width"] - 1
    assert abs(ref_box["y"] - live_box["y"]) < 2 and ref_box["y"] + ref_box["height"] <= 720
    viewed = AuditEntry.objects.get(action="reference_view")
    assert viewed.actor == proctor and viewed.session == session

    page.set_viewport_size(PHONE)
    page.reload()
    wait_for_js(page, LOADED, reference)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert browsers.errors == []
