"""Autodiscovery must report this error, not take it for a missing tasks module."""

import triggers_tests_module_that_does_not_exist  # noqa: F401
