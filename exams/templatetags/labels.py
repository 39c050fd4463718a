"""``{{ key|words }}``: a stored key as people read it (``extra_minutes`` ->
"extra minutes"), for the event details a page lists. Event types, states and
statuses have their words in the models' choices (``get_..._display``, ``label``)."""

from django import template

from exams.models import ReviewDecision

register = template.Library()


@register.filter
def words(value) -> str:
    return str(value).replace("_", " ")


@register.filter
def decision_label(value: str) -> str:
    """A reviewer's decision code (``confirm``) in the words the decision list uses."""
    return ReviewDecision.Decision(value).label
