"""Authorisation that stays true: when a user logs out, is deactivated, loses
a role, is removed from an exam or has their password changed, their open
proctor sockets are told at once (``live.staff_changed``) and close if they
are no longer allowed (a password change ends every browser session signed
in with the old one: ``access.staff_session_current``). The
sockets' periodic recheck (``consumers.PROCTOR_RECHECK_SECONDS``) stays as
the safety net for changes made outside Django (raw SQL, a lost message).

The receivers are connected when ``exams.services`` is imported, which the
admin's autodiscovery does in every process at ``django.setup()``.

Each push waits for the transaction to commit (``on_commit``): a socket that
checked again before the commit would still see the old rights.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from exams import live
from exams.models import Exam

# Saves that change nothing about a user's rights (every sign-in saves last_login).
_HARMLESS_FIELDS = {"last_login"}


def staff_revoke_later(user_ids) -> None:
    """After the commit, have these users' proctor sockets check their rights again."""
    ids = sorted(set(user_ids))
    if ids:
        transaction.on_commit(lambda: [live.staff_changed(pk) for pk in ids])


def _logged_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) or "*"
    live.staff_changed(user.pk, logged_out_session=key)


def _user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and set(update_fields) <= _HARMLESS_FIELDS):
        return
    staff_revoke_later([instance.pk])


def _user_deleted(sender, instance, **kwargs) -> None:
    staff_revoke_later([instance.pk])


def _proctors_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action not in ("post_remove", "pre_clear"):
        return
    if reverse:  # user.proctored_exams.remove(exam) / .clear()
        staff_revoke_later([instance.pk])
    elif action == "pre_clear":  # exam.proctors.clear(): who they were, before they are gone
        staff_revoke_later(instance.proctors.values_list("pk", flat=True))
    else:
        staff_revoke_later(pk_set or ())


def _groups_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action not in ("post_remove", "pre_clear"):
        return
    if not reverse:  # user.groups.remove(group) / .clear()
        staff_revoke_later([instance.pk])
    elif action == "pre_clear":  # group.user_set.clear()
        staff_revoke_later(instance.user_set.values_list("pk", flat=True))
    else:
        staff_revoke_later(pk_set or ())


user_logged_out.connect(_logged_out, dispatch_uid="exams.revocation.logged_out")
post_save.connect(_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="exams.revocation.user_saved")
post_delete.connect(
    _user_deleted, sender=settings.AUTH_USER_MODEL, dispatch_uid="exams.revocation.user_deleted"
)
m2m_changed.connect(_proctors_changed, sender=Exam.proctors.through, dispatch_uid="exams.revocation.proctors")
m2m_changed.connect(
    _groups_changed, sender=get_user_model().groups.through, dispatch_uid="exams.revocation.groups"
)
