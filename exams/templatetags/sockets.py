"""``{% socket_path "proctor_socket" exam.code %}`` gives a websocket route's
path the way ``{% url %}`` gives a page's."""

from django import template

from exams import live

register = template.Library()


@register.simple_tag
def socket_path(name: str, *args) -> str:
    return live.socket_path(name, *args)
