"""A module that task configuration names but that must never be imported.

tests/test_manager.py asserts it stays out of ``sys.modules``: a task's
``run`` is looked up among registered tasks only, never imported.
"""

raise RuntimeError("tests.never_imported was imported: a task name must never be imported")
