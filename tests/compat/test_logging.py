"""triggers.logging: the handlers and loggers 2.x tasks and tests used."""

from __future__ import annotations

import logging
import threading
import unittest

import triggers.logging
from triggers.logging import LocalLogger, LoggerAdapter, LogLevelHandler, MemoryHandler
from triggers.logging import handlers as handlers_module
from triggers.logging import loggers as loggers_module


class PackageTestCase(unittest.TestCase):
    def test_names_and_submodules(self) -> None:
        self.assertIs(triggers.logging.LogLevelHandler, handlers_module.LogLevelHandler)
        self.assertIs(triggers.logging.MemoryHandler, handlers_module.MemoryHandler)
        self.assertIs(triggers.logging.LocalLogger, loggers_module.LocalLogger)
        self.assertIs(triggers.logging.LoggerAdapter, loggers_module.LoggerAdapter)

    def test_standard_library_logging_is_untouched(self) -> None:
        # The package shares the standard library's name; importing it changes nothing there.
        import logging as stdlib_logging
        import logging.handlers as stdlib_handlers

        self.assertIsNot(stdlib_logging, triggers.logging)
        self.assertTrue(hasattr(stdlib_handlers, "RotatingFileHandler"))
        self.assertIs(logging.getLogger, stdlib_logging.getLogger)


class LogLevelHandlerTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.handler = LogLevelHandler()
        self.logger = LocalLogger("test.level")
        self.logger.addHandler(self.handler)

    def test_remembers_the_highest_level(self) -> None:
        self.assertEqual(self.handler.max_level, logging.NOTSET)
        self.logger.info("one")
        self.logger.error("two")
        self.logger.warning("three")
        self.assertEqual(self.handler.max_level, logging.ERROR)
        self.assertEqual(self.handler.max_level_name, "ERROR")

    def test_clear(self) -> None:
        self.logger.critical("boom")
        self.handler.clear()
        self.assertEqual(self.handler.max_level, logging.NOTSET)
        self.logger.debug("quiet")
        self.assertEqual(self.handler.max_level, logging.DEBUG)

    def test_the_2x_name_of_the_level(self) -> None:
        self.logger.warning("careful")
        self.assertEqual(self.handler.max_level_emitted, logging.WARNING)
        self.handler.clear()
        self.assertEqual(self.handler.max_level_emitted, logging.NOTSET)

    def test_handler_level_filters(self) -> None:
        handler = LogLevelHandler(logging.WARNING)
        self.logger.addHandler(handler)
        self.logger.info("below")
        self.assertEqual(handler.max_level, logging.NOTSET)


class MemoryHandlerTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.handler = MemoryHandler()
        self.logger = LocalLogger("test.memory")
        self.logger.addHandler(self.handler)

    def test_keeps_records_in_order(self) -> None:
        self.logger.info("hello %s", "world")
        self.logger.warning("second")
        self.assertEqual(len(self.handler), 2)
        self.assertEqual(self.handler[0].getMessage(), "hello world")
        self.assertEqual(self.handler[-1].levelno, logging.WARNING)
        self.assertEqual([r.levelname for r in self.handler], ["INFO", "WARNING"])
        self.assertEqual([r.msg for r in self.handler[0:1]], ["hello %s"])
        self.assertEqual(self.handler.max_level, logging.WARNING)

    def test_formatted_messages(self) -> None:
        self.logger.info("plain %d", 1)
        self.assertEqual(self.handler.messages, ["plain 1"])
        self.handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        self.assertEqual(self.handler.messages, ["INFO:test.memory:plain 1"])

    def test_clear_and_truth(self) -> None:
        self.assertTrue(self.handler)
        self.logger.error("x")
        self.handler.clear()
        self.assertEqual(len(self.handler), 0)
        self.assertEqual(list(self.handler), [])
        self.assertEqual(self.handler.max_level, logging.NOTSET)
        self.assertTrue(self.handler, "an empty handler must not be false")

    def test_records_from_threads(self) -> None:
        threads = [
            threading.Thread(target=lambda i=i: self.logger.info("t%d", i)) for i in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(self.handler.messages), sorted(f"t{i}" for i in range(20)))


class LocalLoggerTestCase(unittest.TestCase):
    def test_outside_the_logging_tree(self) -> None:
        local = LocalLogger("test.local.tree")
        self.assertIsNot(logging.getLogger("test.local.tree"), local)
        self.assertIsNone(local.parent)
        self.assertFalse(local.propagate)

    def test_records_reach_only_its_own_handlers(self) -> None:
        root_handler = MemoryHandler()
        logging.getLogger().addHandler(root_handler)
        self.addCleanup(logging.getLogger().removeHandler, root_handler)
        local = LocalLogger("test.local.handlers")
        mine = MemoryHandler()
        local.addHandler(mine)
        local.error("only mine")
        self.assertEqual(mine.messages, ["only mine"])
        self.assertEqual(len(root_handler), 0)

    def test_no_handlers_means_silence(self) -> None:
        # Not even logging.lastResort, which prints to stderr for ordinary loggers.
        seen = MemoryHandler()
        previous = logging.lastResort
        logging.lastResort = seen
        self.addCleanup(setattr, logging, "lastResort", previous)
        LocalLogger("test.local.silent").error("nobody listens")
        self.assertEqual(len(seen), 0)

    def test_levels_follow_set_level_and_disable(self) -> None:
        local = LocalLogger("test.local.levels", logging.WARNING)
        handler = MemoryHandler()
        local.addHandler(handler)
        local.info("dropped")
        self.assertFalse(local.isEnabledFor(logging.INFO))
        local.setLevel(logging.DEBUG)
        self.assertTrue(local.isEnabledFor(logging.INFO))
        local.info("kept")
        logging.disable(logging.CRITICAL)
        self.addCleanup(logging.disable, logging.NOTSET)
        local.error("disabled")
        self.assertEqual(handler.messages, ["kept"])


class LoggerAdapterTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.handler = MemoryHandler()
        logger = LocalLogger("test.adapter")
        logger.addHandler(self.handler)
        self.adapter = LoggerAdapter(logger, {"storage_uid": "s1", "instance_name": "t#0"})

    def test_adds_its_context_to_records(self) -> None:
        self.adapter.info("hi")
        record = self.handler[0]
        self.assertEqual(record.storage_uid, "s1")  # type: ignore[attr-defined]
        self.assertEqual(record.instance_name, "t#0")  # type: ignore[attr-defined]

    def test_merges_with_the_extra_of_the_call(self) -> None:
        self.adapter.warning("hi", extra={"instance_name": "override", "step": 2})
        record = self.handler[0]
        self.assertEqual(record.storage_uid, "s1")  # type: ignore[attr-defined]
        self.assertEqual(record.instance_name, "override")  # type: ignore[attr-defined]
        self.assertEqual(record.step, 2)  # type: ignore[attr-defined]
        self.assertEqual(self.adapter.extra, {"storage_uid": "s1", "instance_name": "t#0"})

    def test_without_extra(self) -> None:
        adapter = LoggerAdapter(LocalLogger("test.adapter.bare"))
        handler = MemoryHandler()
        adapter.logger.addHandler(handler)
        adapter.error("x %s", "y")
        self.assertEqual(handler.messages, ["x y"])


class LocalLogger2xTestCase(unittest.TestCase):
    """LocalLogger as 2.x code calls it: no name, and handlers added in a chain."""

    def test_a_logger_without_a_name_gets_a_unique_one(self) -> None:
        first, second = LocalLogger(), LocalLogger()
        self.assertTrue(first.name)
        self.assertNotEqual(first.name, second.name)
        # Still outside the global tree: getLogger() of that name is another logger.
        self.assertIsNot(logging.getLogger(first.name), first)

    def test_add_handler_returns_the_logger(self) -> None:
        levels, memory = LogLevelHandler(), MemoryHandler()
        logger = LocalLogger().addHandler(levels).addHandler(memory)
        self.assertIsInstance(logger, LocalLogger)
        logger.error("chained")
        self.assertEqual(levels.max_level_emitted, logging.ERROR)
        self.assertEqual(memory.messages, ["chained"])

    def test_the_level_is_still_the_second_argument(self) -> None:
        logger = LocalLogger(None, logging.ERROR).addHandler(handler := MemoryHandler())
        logger.warning("below")
        self.assertEqual(len(handler), 0)
