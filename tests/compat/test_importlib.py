"""triggers.importlib.dl: a dotted path to the object, or an ImportError that names the path."""

from __future__ import annotations

import collections.abc
import logging.handlers
import os.path
import sys
import unittest

from triggers.errors import TriggersError
from triggers.importlib import (
    DottedPathAttributeNotFound,
    DottedPathError,
    DottedPathModuleNotFound,
    InvalidDottedPath,
    dl,
)


class DlTestCase(unittest.TestCase):
    def test_dotted_and_colon_forms(self) -> None:
        self.assertIs(dl("os.path.join"), os.path.join)
        self.assertIs(dl("os.path:join"), os.path.join)
        self.assertIs(dl("collections.abc.Mapping"), collections.abc.Mapping)

    def test_attributes_below_a_class(self) -> None:
        self.assertIs(
            dl("logging.handlers.MemoryHandler.flush"), logging.handlers.MemoryHandler.flush
        )
        self.assertIs(
            dl("logging.handlers:MemoryHandler.flush"), logging.handlers.MemoryHandler.flush
        )

    def test_imports_a_module_not_imported_yet(self) -> None:
        sys.modules.pop("colorsys", None)
        found = dl("colorsys.rgb_to_hsv")
        self.assertIs(found, sys.modules["colorsys"].rgb_to_hsv)

    def test_missing_module(self) -> None:
        for path, missing in [
            ("no_such_package.Name", "no_such_package"),
            ("os.no_such_module.Name", "os.no_such_module"),
            ("tests.compat.no_such_module:Name", "tests.compat.no_such_module"),
        ]:
            with self.subTest(path=path), self.assertRaises(DottedPathModuleNotFound) as caught:
                dl(path)
            self.assertEqual(caught.exception.dotted_path, path)
            self.assertEqual(caught.exception.name, missing)
            self.assertIn(repr(path), str(caught.exception))
            self.assertIn(repr(missing), str(caught.exception))

    def test_missing_attribute(self) -> None:
        for path, owner in [
            ("os.path.no_such_name", "os.path"),
            ("os.path:no_such_name", "os.path"),
            ("collections.abc.Mapping.no_such_attr", "collections.abc.Mapping"),
        ]:
            with self.subTest(path=path), self.assertRaises(DottedPathAttributeNotFound) as caught:
                dl(path)
            self.assertIn(repr(owner), str(caught.exception))
            self.assertIn(repr(path), str(caught.exception))

    def test_errors_are_import_errors_of_the_package(self) -> None:
        with self.assertRaises(ImportError) as caught:
            dl("no_such_package.Name")
        self.assertIsInstance(caught.exception, DottedPathError)
        self.assertIsInstance(caught.exception, TriggersError)

    def test_not_a_dotted_path(self) -> None:
        for path in ["", "os", "a..b", ".a", ":x", "os:", "os:a..b", None, 5]:
            with self.subTest(path=path), self.assertRaises(InvalidDottedPath):
                dl(path)  # type: ignore[arg-type]
        self.assertTrue(issubclass(InvalidDottedPath, ValueError))

    def test_error_raised_by_the_module_itself_propagates(self) -> None:
        # The module exists; what it imports does not: that is not "no module named ...".
        sys.modules.pop("tests.broken_tasks_app.tasks", None)
        self.addCleanup(sys.modules.pop, "tests.broken_tasks_app.tasks", None)
        with self.assertRaises(ModuleNotFoundError) as caught:
            dl("tests.broken_tasks_app.tasks.Anything")
        self.assertNotIsInstance(caught.exception, DottedPathError)
        self.assertEqual(caught.exception.name, "triggers_tests_module_that_does_not_exist")
