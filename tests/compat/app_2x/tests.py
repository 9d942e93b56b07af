"""The app's own tests, as written for Triggers 2.x: the test mixin runs the tasks in
threads, and the assertions read the session afresh."""

import logging
import uuid

from django.test import SimpleTestCase

from triggers.manager import TriggerManager
from triggers.storages.cache import CacheStorageBackend
from triggers.testing import (
    PassThruTask,
    SelfRetryingTask,
    SelfSkippingTask,
    TriggerManagerTestCaseMixin,
)

from . import tasks

WORKFLOW = {
    "t_importSubject": {"after": ["sessionStarted"], "run": tasks.ImportSubject.name},
    "t_scorePage": {
        "after": ["t_importSubject"],
        "andEvery": "pageSaved",
        "run": tasks.ScorePage.name,
    },
    "t_fetchReport": {"after": ["t_importSubject"], "run": tasks.FetchReport.name},
    "t_echo": {"after": ["t_fetchReport"], "run": PassThruTask.name},
    "t_skipped": {"after": ["sessionStarted"], "run": SelfSkippingTask.name},
    "t_patient": {
        "after": ["sessionStarted"],
        "run": SelfRetryingTask.name,
        "withParams": {"retries": {"max": 2}},
    },
}


class ImportWorkflowTestCase(TriggerManagerTestCaseMixin, SimpleTestCase):
    def setUp(self):
        super().setUp()
        storage = CacheStorageBackend("app-2x-" + uuid.uuid4().hex, cache="locmem")
        self.manager = TriggerManager(storage)
        self.manager.update_configuration(WORKFLOW)

    def test_a_session_runs_through(self):
        self.manager.fire("sessionStarted", {"subject_id": 42})
        self.manager.fire("pageSaved", {"page": 1})
        self.assertInstanceFinished("t_importSubject#0", {"subject_id": 42})
        self.assertInstanceFinished("t_scorePage#0", {"page": 1, "score": 10})
        self.assertUnresolvedInstances([])

    def test_a_retry_with_a_long_cooldown_is_replayed_at_once(self):
        self.manager.fire("sessionStarted", {"subject_id": 42})
        self.assertInstanceReplayed("t_fetchReport#0")
        self.assertInstanceFinished("t_fetchReport#1", {"fetched": True, "retries": 1})
        self.assertInstanceFinished("t_echo#0")

    def test_a_failure_records_exactly_its_context(self):
        self.manager.fire("sessionStarted", {"subject_id": 42})
        self.manager.fire("pageSaved", {"page": 13})
        failed = self.assertInstanceFailed("t_scorePage#0", ValueError)
        self.assertEqual(failed.metadata["exceptionContext"], {"page": 13, "rule": "no-13"})
        # The task logged nothing: its logs need no one's attention.
        self.assertEqual(self.manager.storage.get_instances_with_unresolved_logs(), [])

    def test_what_the_task_logged_is_its_log_level(self):
        self.manager.fire("sessionStarted", {"subject_id": -1})
        imported = self.assertInstanceFinished("t_importSubject#0", {"subject_id": -1})
        self.assertEqual(imported.metadata["logLevel"], logging.ERROR)
        unresolved = self.manager.storage.get_instances_with_unresolved_logs()
        self.assertEqual([instance.name for instance in unresolved], ["t_importSubject#0"])

    def test_the_testing_tasks(self):
        self.manager.fire("sessionStarted", {"subject_id": 42})
        skipped = self.assertInstanceSkipped("t_skipped#0")
        self.assertEqual(skipped.metadata["kwargs"], {"sessionStarted": {"subject_id": 42}})
        self.assertInstanceReplayed("t_patient#0")
        self.assertInstanceReplayed("t_patient#1")
        self.assertInstanceFinished("t_patient#2", {"count": 2})
