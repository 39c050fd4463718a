"""Session fixtures for the detection tests. Nothing here needs Django."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# pytest runs with --import-mode=importlib, which puts no test folder on
# sys.path; the tests share plain helpers from detection_photos.py.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from detection_photos import photo  # noqa: E402


@pytest.fixture(scope="session")
def obama_ref() -> np.ndarray:
    from detection.core import encode_reference

    return encode_reference(photo("obama.jpg"))


@pytest.fixture(scope="session")
def biden_ref() -> np.ndarray:
    from detection.core import encode_reference

    return encode_reference(photo("biden.jpg"))


if "pytest_django.plugin" not in sys.modules:
    # Run with ``-p no:django`` the core's tests need no Django at all; the
    # autouse _media_root fixture of tests/conftest.py needs pytest-django's
    # ``settings``, so it is shadowed here, and only then.
    @pytest.fixture(autouse=True)
    def _media_root():
        yield
