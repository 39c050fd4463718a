"""``{% if user|may_proctor %}``: the navigation shows only the pages a role may
open, asking the same access helpers the views ask."""

from django import template

from exams.access import is_proctor, is_reviewer

register = template.Library()


@register.filter
def may_proctor(user) -> bool:
    return user is not None and is_proctor(user)


@register.filter
def may_review(user) -> bool:
    return user is not None and is_reviewer(user)
