"""Live analysis of exam sessions: the Django and Celery side of detection.

A frame goes: websocket consumer or verification view -> ``intake.submit``
(the one entry) -> ``queue`` (a latest-wins slot per session) -> a Celery task
queued by name (``tasks``) -> ``pipeline`` (``detection.core`` for the vision,
``exams.services`` for events and state) -> ``exams.live`` pushes.

Nothing below this package imports it: ``exams.services`` and ``exams.live``
never reach back up here.
"""
