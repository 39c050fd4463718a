"""Lazy, once-per-process access to the heavy model libraries.

``import detection.core`` never imports face_recognition, dlib or
ai_edge_litert; the first check that needs them does, under a lock, and the
loaded objects are cached for the life of the process.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from types import ModuleType

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_face_api: ModuleType | None = None


def face_api() -> ModuleType:
    """``face_recognition.api`` with its dlib models loaded (about 1 s and 130 MB, once)."""
    global _face_api
    if _face_api is not None:
        return _face_api
    with _lock:
        if _face_api is None:
            # face_recognition_models needs pkg_resources (gone in setuptools 81);
            # when it fails to import, face_recognition calls quit(), which would
            # end a worker with exit status 0. Refuse loudly instead.
            if importlib.util.find_spec("pkg_resources") is None:
                raise RuntimeError(
                    "face_recognition_models needs pkg_resources, which setuptools>=81 removed; "
                    "install 'setuptools<81' (see requirements.txt)"
                )
            if importlib.util.find_spec("face_recognition_models") is None:
                raise RuntimeError("face_recognition_models is not installed (see requirements.txt)")
            import warnings

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
                import face_recognition.api as api
            logger.info("loaded face_recognition models")
            _face_api = api
    return _face_api
