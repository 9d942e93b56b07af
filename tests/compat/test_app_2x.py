"""The 2.x app's own test suite (``tests/compat/app_2x/tests.py``), run as it was written.

The app imports its Celery app, as 2.x projects did, so its tests run where Celery is
installed (the ``celery`` tox environment); elsewhere they are skipped.
"""

import pytest

pytest.importorskip("celery", reason="the 2.x app imports Celery (tox -e celery has it)")

from tests.compat.app_2x.tests import ImportWorkflowTestCase  # noqa: E402

__all__ = ["ImportWorkflowTestCase"]
