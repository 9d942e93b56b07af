"""A minimal task runner: runs each task inline and logs when it starts."""

import logging

from triggers.tasks.runners import BaseTaskRunner
from triggers.task import run_task

logger = logging.getLogger(__name__)


class LoggingRunner(BaseTaskRunner):
    name = "inline-logging"
    runs_in_process = True  # tasks run in the process that fires
    started = []

    def run(self, manager, task_instance):
        # Plain data only: what a task needs to rebuild the manager anywhere.
        payload = self._prepare_task_kwargs(manager, task_instance)
        logger.info("starting %s of session %s", payload["instance_name"], payload["storage_uid"])
        self.started.append(payload["instance_name"])
        try:
            run_task(payload)
        except Exception:
            # run_task() recorded the failure on the instance already.
            logger.exception("%s failed", payload["instance_name"])
