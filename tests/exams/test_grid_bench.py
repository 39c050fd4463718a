"""manage.py grid_bench: the proctors' grid in Chromium under simulated
candidates. A short real run against daphne; timing figures are reported,
never asserted."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from exams.consumers import GRID_PUSH_SECONDS
from exams.loadtest.grid import GridBenchParams
from exams.models import Exam
from tests.e2e.conftest import server_url  # noqa: F401  (a fixture: daphne on a free port)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"url": "http://example.org:8000"}, "this machine"),
        ({"url": "ftp://127.0.0.1"}, "--url must look like"),
        ({"candidates": 0}, "--candidates"),
        ({"minutes": 0}, "--minutes"),
        ({"interval": 0.1}, "--interval"),
    ],
)
def test_it_refuses_bad_parameters(change, message):
    with pytest.raises(ValueError, match=message):
        GridBenchParams(**{"url": "http://127.0.0.1:8000", **change})


@pytest.mark.browser
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_it_measures_the_grid_in_chromium_and_removes_its_exam(server_url):  # noqa: F811
    out = io.StringIO()
    call_command(
        "grid_bench",
        url=server_url,
        candidates=6,
        minutes=0.25,
        alerts_per_minute=12,
        json=True,
        stdout=out,
        stderr=io.StringIO(),
    )
    result = json.loads(out.getvalue())
    assert result["page_errors"] == []
    # Six candidates, a frame each every 2 s for 15 s: about 45 tile updates,
    # which the consumer batched into at most one message per GRID_PUSH_SECONDS.
    assert result["pushes"]["messages"] >= 40
    assert result["pushes"]["alerts"] >= 2
    assert 10 <= result["batches"] <= 15 / GRID_PUSH_SECONDS + 2
    assert result["render_ms_per_batch"]["n"] == result["batches"]
    assert result["render_ms_per_batch"]["p50"] > 0
    assert result["heap_mb"]["at_end_after_gc"] > 0
    assert result["dom_nodes"]["at_end"] > 0
    assert result["feed_entries_at_end"] >= 2
    assert not Exam.objects.filter(title__startswith="[loadtest]").exists()


def test_it_needs_a_url():
    with pytest.raises(CommandError):
        call_command("grid_bench")
