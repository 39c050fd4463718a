"""``{% if user|may_proctor %}``: the navigation shows only the pages a role may
open, asking the same access helpers the views ask (and, for the admin, the
admin site's own rule)."""

from django import template

from exams.access import is_proctor, is_reviewer

register = template.Library()


@register.filter
def may_proctor(user) -> bool:
    return user is not None and is_proctor(user)


@register.filter
def may_review(user) -> bool:
    return user is not None and is_reviewer(user)


@register.filter
def may_administer(user) -> bool:
    """Whether the Django admin lets ``user`` in (its own rule: active staff)."""
    return user is not None and user.is_active and user.is_staff
