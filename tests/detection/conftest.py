"""Session fixtures for the detection tests. Nothing here needs Django."""

from __future__ import annotations

import numpy as np
import pytest
from detection_photos import photo


@pytest.fixture(scope="session")
def obama_ref() -> np.ndarray:
    from detection.core import encode_reference

    return encode_reference(photo("obama.jpg"))


@pytest.fixture(scope="session")
def biden_ref() -> np.ndarray:
    from detection.core import encode_reference

    return encode_reference(photo("biden.jpg"))


@pytest.fixture(autouse=True)
def _media_root():
    """The detection core writes no media and must run without Django:
    this shadows the autouse fixture of tests/conftest.py that needs pytest-django."""
    yield
