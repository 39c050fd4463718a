from django.apps import AppConfig


class DetectionConfig(AppConfig):
    """The Django-facing side of detection: Celery tasks and the frame pipeline.

    The framework-free analysis code lives in ``detection.core``.
    """

    name = "detection"
