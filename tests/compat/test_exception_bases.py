"""Every exception is still caught by the ``except`` clauses 2.x code wrote."""

from __future__ import annotations

import importlib.util
import uuid

from django.test import SimpleTestCase

from triggers import CacheStorageBackend
from triggers.errors import InvalidTaskConfig
from triggers.locking import LockAcquisitionFailed, acquire_lock
from triggers.task import MaxRetriesExceeded, Retry, StatusChange


class ExceptionBasesTestCase(SimpleTestCase):
    def test_lock_acquisition_failed_is_a_runtime_error(self) -> None:
        key = "compat-lock-" + uuid.uuid4().hex
        with acquire_lock(key, cache="locmem"):
            with self.assertRaises(RuntimeError) as caught:
                with acquire_lock(key, cache="locmem", block=False):
                    pass
        self.assertIsInstance(caught.exception, LockAcquisitionFailed)

    def test_retry_is_a_status_change(self) -> None:
        retry = Retry(exc=ValueError("down"), metadata={"attempt": 1}, cooldown=2)
        self.assertIsInstance(retry, StatusChange)
        self.assertEqual(retry.status, "failed")
        self.assertEqual(retry.metadata, {"attempt": 1})
        self.assertIn("down", str(retry))

    def test_a_bad_task_configuration_is_a_type_error(self) -> None:
        storage = CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem")
        with self.assertRaises(TypeError) as caught:
            storage.update_configuration({"t_a": {"after": "not a list", "run": "x"}})
        self.assertIsInstance(caught.exception, InvalidTaskConfig)
        self.assertIsInstance(caught.exception, ValueError)

    def test_max_retries_exceeded_is_celerys_where_celery_is_installed(self) -> None:
        exc = MaxRetriesExceeded("t", "t#3", 3, 3)
        if importlib.util.find_spec("celery") is None:
            self.skipTest("Celery is not installed here (the celery tox environment has it)")
        from celery.exceptions import MaxRetriesExceededError

        self.assertIsInstance(exc, MaxRetriesExceededError)
        self.assertIn("max_retries is 3", str(exc))
