import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proctor.settings")

app = Celery("proctor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_connections(**kwargs) -> None:
    """Django's own connection hygiene around each task, as around each request:
    the connection goes back to the process's pool (DB_POOL, the default) or is
    kept for CONN_MAX_AGE (DB_POOL=false), and is dropped once broken (after a
    PostgreSQL restart, say). Celery's Django fixup would otherwise close it
    after every task (CELERY_DB_REUSE_MAX is set so that it does not), and a
    new PostgreSQL connection per analysed frame cost about a tenth of a
    worker's time (py-spy during manage.py loadtest)."""
    from django.db import close_old_connections

    close_old_connections()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _mask_tokens(logger, **kwargs) -> None:
    """A worker replaces the root logger's handlers with its own, so settings.LOGGING's
    filter is gone there: give Celery's handlers the same one."""
    from proctor.logfilters import MaskCandidateTokens

    for handler in logger.handlers:
        if not any(isinstance(f, MaskCandidateTokens) for f in handler.filters):
            handler.addFilter(MaskCandidateTokens())
