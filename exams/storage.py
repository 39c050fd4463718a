"""Where biometric files go: private folders, random names, and no file outliving
a transaction that rolled back.

Three pieces, all used from the models and services:

- ``PrivateFileSystemStorage`` (the default storage, set in settings): files
  0600 and folders 0700, MEDIA_ROOT itself included. Django applies
  FILE_UPLOAD_PERMISSIONS to every ``storage.save`` (ContentFile ones too), but
  it opens a new file 0666 & ~umask and only then chmods it, and it never
  touches a MEDIA_ROOT that already exists. A 0700 MEDIA_ROOT closes both: no
  other user can reach a file during that moment, whatever the umask was.
- ``reference_upload_to`` and ``evidence_upload_to``: a file is named by a
  random uuid4, never by the candidate's token, name or session, so a file
  name tells nothing and cannot be guessed from a link.
- ``atomic_with_files``: ``transaction.atomic`` that also deletes the files
  written inside it if it exits with an exception. Replacing and deleting
  rows is handled by django-cleanup (after commit); a file whose row never
  committed for any other reason (a crash, an outer rollback) is what
  ``media_sweep`` finds later.
"""

from __future__ import annotations

import contextvars
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

from django.core.files.storage import FileSystemStorage, default_storage
from django.db import transaction

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700

# What a reference photo may keep of its uploaded name: the kind of image.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# Names written by the innermost atomic_with_files block of this thread or task.
_written: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("files_written", default=None)


class PrivateFileSystemStorage(FileSystemStorage):
    """FileSystemStorage whose files are 0600 and folders 0700 whatever the
    settings say, with MEDIA_ROOT made (or tightened to) 0700 before a write."""

    @property
    def file_permissions_mode(self) -> int:
        return FILE_MODE

    @property
    def directory_permissions_mode(self) -> int:
        return DIRECTORY_MODE

    def _save(self, name: str, content) -> str:
        self._private_root()
        name = super()._save(name, content)
        names = _written.get()
        if names is not None:
            names.append(name)
        return name

    def _private_root(self) -> None:
        root = self.location
        try:
            os.makedirs(root, DIRECTORY_MODE, exist_ok=True)
            if os.stat(root).st_mode & 0o077:
                os.chmod(root, DIRECTORY_MODE)
        except OSError:
            log.warning("could not make the media folder %s private", root, exc_info=True)


def _random_name(folder: str, filename: str, default_suffix: str) -> str:
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        suffix = default_suffix
    return f"{folder}/{uuid.uuid4().hex}{suffix}"


def reference_upload_to(instance, filename: str) -> str:
    return _random_name("references", filename, ".jpg")


def evidence_upload_to(instance, filename: str) -> str:
    return _random_name("evidence", filename, ".jpg")


def clip_upload_to(instance, filename: str) -> str:
    return _random_name("clips", filename, ".jpg")


@contextmanager
def atomic_with_files(using: str | None = None) -> Iterator[None]:
    """``transaction.atomic(using)``; if the block exits with an exception (so
    its changes roll back) the files saved inside it are deleted too. Nested
    blocks hand their files to the enclosing one when they succeed, so the
    outer block's rollback removes them as well."""
    names: list[str] = []
    token = _written.set(names)
    try:
        with transaction.atomic(using=using):
            yield
    except BaseException:
        _written.reset(token)
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:
                log.warning("could not delete %s after a rollback", name, exc_info=True)
        raise
    _written.reset(token)
    outer = _written.get()
    if outer is not None:
        outer.extend(names)
