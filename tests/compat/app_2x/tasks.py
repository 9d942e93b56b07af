"""The app's tasks, written as the Triggers 2.x docs wrote them: ``TriggerTask``
subclasses with ``_run``, logging through ``context.get_logger_context()``, each
registered with the Celery app by ``app.register_task``."""

from triggers.exceptions import with_context
from triggers.task import TriggerTask

from .celery import app


class ImportSubject(TriggerTask):
    name = "app_2x.import_subject"

    def _run(self, context):
        subject_id = context.trigger_kwargs["sessionStarted"]["subject_id"]
        with context.get_logger_context() as logger:
            if subject_id < 0:
                logger.error("subject %s has no record: imported empty", subject_id)
            logger.debug("importing subject %s", subject_id)
        return {"subject_id": subject_id}


class ScorePage(TriggerTask):
    name = "app_2x.score_page"

    def _run(self, context):
        page = context.trigger_kwargs["pageSaved"]["page"]
        if page == 13:
            raise with_context(
                ValueError("page 13 cannot be scored"), {"page": page, "rule": "no-13"}
            )
        return {"page": page, "score": 10 * page}


class FetchReport(TriggerTask):
    """Retries once: the report service is slow to wake up (90 s unless configured)."""

    name = "app_2x.fetch_report"

    def _run(self, context):
        if self.request.retries < 1:
            self.retry(cooldown=context.trigger_kwargs.get("cooldown", 90))
        return {"fetched": True, "retries": self.request.retries}


app.register_task(ImportSubject())
app.register_task(ScorePage())
app.register_task(FetchReport())
