"""Proctoring detection: the framework-free core (``detection.core``), its CLI
(``python -m detection``) and the Celery tasks that wrap it."""
