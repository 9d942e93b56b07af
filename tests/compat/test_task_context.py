"""TaskContext.filter_kwargs and TaskContext.get_logger_context, as 2.x task bodies call them."""

from __future__ import annotations

import logging
import unittest
from decimal import Decimal
from typing import Any

from triggers.exceptions import InvalidTriggerKwargs
from triggers.logging import LocalLogger, LoggerAdapter, MemoryHandler
from triggers.task import TaskContext, TriggerTask


def context(trigger_kwargs: dict[str, Any]) -> TaskContext:
    return TaskContext("t_score#2", "default", "cache", "session-1", trigger_kwargs=trigger_kwargs)


def required_int(value: Any) -> int:
    if value is None:
        raise ValueError("required")
    return int(value)


class FilterLike:
    """Shaped like a filter of the 2.x ``filters`` library: ``apply(value)``."""

    def apply(self, value: Any) -> Any:
        if value == "bad":
            raise ValueError("not accepted")
        return f"<{value}>"


class FilterKwargsTestCase(unittest.TestCase):
    def test_cleans_the_values_it_is_told_about_and_keeps_the_rest(self) -> None:
        ctx = context(
            {
                "pageSubmitted": {"pageId": "7", "score": "1.5", "answers": {"q1": "a"}},
                "sessionStarted": {"subject": 42},
            }
        )
        cleaned = ctx.filter_kwargs({"pageSubmitted": {"pageId": required_int, "score": Decimal}})
        self.assertEqual(
            cleaned,
            {
                "pageSubmitted": {"pageId": 7, "score": Decimal("1.5"), "answers": {"q1": "a"}},
                "sessionStarted": {"subject": 42},
            },
        )
        # The context's own kwargs are not changed.
        self.assertEqual(ctx.trigger_kwargs["pageSubmitted"]["pageId"], "7")

    def test_missing_values_reach_the_filter_as_none(self) -> None:
        ctx = context({"pageSubmitted": {}})
        cleaned = ctx.filter_kwargs(
            {"pageSubmitted": {"optional": lambda v: v}, "neverFired": {"x": lambda v: v}}
        )
        self.assertEqual(cleaned, {"pageSubmitted": {"optional": None}, "neverFired": {"x": None}})

    def test_every_bad_value_is_named_in_one_error(self) -> None:
        ctx = context({"pageSubmitted": {"pageId": "seven", "score": "x"}, "other": "not a dict"})
        with self.assertRaises(InvalidTriggerKwargs) as caught:
            ctx.filter_kwargs(
                {
                    "pageSubmitted": {
                        "pageId": required_int,
                        "score": Decimal,
                        "user": required_int,
                    },
                    "other": {"a": str},
                }
            )
        errors = caught.exception.errors
        self.assertEqual(sorted(errors), ["other", "pageSubmitted"])
        self.assertEqual(sorted(errors["pageSubmitted"]), ["pageId", "score", "user"])
        self.assertIn("'seven'", errors["pageSubmitted"]["pageId"])
        self.assertIn("required", errors["pageSubmitted"]["user"])
        self.assertIn("not a dict", errors["other"]["a"])
        message = str(caught.exception)
        for where in (
            "pageSubmitted.pageId",
            "pageSubmitted.score",
            "pageSubmitted.user",
            "other.a",
        ):
            self.assertIn(where, message)
        # A ValueError, as in 2.x, with the errors as context for the failure metadata.
        self.assertIsInstance(caught.exception, ValueError)
        self.assertEqual(caught.exception.context["filter_errors"], errors)  # type: ignore[attr-defined]

    def test_objects_with_apply_and_classes_with_apply(self) -> None:
        ctx = context({"t": {"a": "x", "b": "y", "c": "bad"}})
        self.assertEqual(
            ctx.filter_kwargs({"t": {"a": FilterLike(), "b": FilterLike}}),
            {"t": {"a": "<x>", "b": "<y>", "c": "bad"}},
        )
        with self.assertRaises(InvalidTriggerKwargs) as caught:
            ctx.filter_kwargs({"t": {"c": FilterLike()}})
        self.assertIn("not accepted", caught.exception.errors["t"]["c"])

    def test_something_that_is_no_filter_is_a_type_error(self) -> None:
        with self.assertRaises(TypeError) as caught:
            context({"t": {"a": 1}}).filter_kwargs({"t": {"a": 5}})
        self.assertIn("t.a", str(caught.exception))

    def test_no_filters(self) -> None:
        ctx = context({"t": {"a": 1}})
        self.assertEqual(ctx.filter_kwargs({}), {"t": {"a": 1}})


class LoggerContextTestCase(unittest.TestCase):
    def test_identifies_the_run(self) -> None:
        ctx = context({})
        self.assertEqual(
            ctx.get_logger_context(),
            {
                "storage_uid": "session-1",
                "instance_name": "t_score#2",
                "task_config_name": "t_score",
                "task_name": None,
                "manager_type": "default",
                "storage_type": "cache",
            },
        )

    def test_names_the_task_once_resolved(self) -> None:
        class ContextTask(TriggerTask):
            name = "tests.compat.context_task"

        ctx = context({})
        ctx.task = ContextTask(ctx)
        self.assertEqual(ctx.get_logger_context()["task_name"], "tests.compat.context_task")

    def test_records_can_carry_it(self) -> None:
        # None of the keys clashes with a LogRecord attribute, so logging accepts them as extra.
        ctx = context({})
        handler = MemoryHandler()
        logger = LocalLogger("test.task_context")
        logger.addHandler(handler)
        LoggerAdapter(logger, ctx.get_logger_context()).warning("careful")
        self.assertEqual(handler[0].instance_name, "t_score#2")  # type: ignore[attr-defined]
        self.assertEqual(handler[0].levelno, logging.WARNING)

    def test_the_task_logger_puts_it_on_every_record(self) -> None:
        ctx = context({})
        handler = MemoryHandler()
        target = logging.getLogger("triggers.tasks.t_score")
        target.addHandler(handler)
        old_level = target.level
        target.setLevel(logging.INFO)
        try:
            ctx.logger.info("scoring")
        finally:
            target.removeHandler(handler)
            target.setLevel(old_level)
        record = handler[0]
        self.assertEqual(record.getMessage(), "scoring")
        for key, value in ctx.get_logger_context().items():
            self.assertEqual(getattr(record, key), value)


class GetLoggerContext2xTestCase(unittest.TestCase):
    """``with context.get_logger_context() as logger:``, as task bodies from the 2.x docs do."""

    def test_yields_a_logger_of_the_task_whose_records_carry_the_run(self) -> None:
        ctx = context({})
        handler = MemoryHandler()
        target = logging.getLogger("triggers.tasks.t_score")
        target.addHandler(handler)
        try:
            with ctx.get_logger_context(context={"subject": 7}) as logger:
                logger.warning("late", extra={"page": 2})
        finally:
            target.removeHandler(handler)
        record = handler[0]
        self.assertEqual(record.getMessage(), "late")
        self.assertEqual(record.instance_name, "t_score#2")  # type: ignore[attr-defined]
        self.assertEqual(record.subject, 7)  # type: ignore[attr-defined]
        self.assertEqual(record.page, 2)  # type: ignore[attr-defined]
        # What was logged is the instance's logLevel.
        self.assertEqual(ctx.log_level, logging.WARNING)

    def test_a_logger_given_gets_the_records_and_its_levels_count(self) -> None:
        ctx = context({})
        memory = MemoryHandler()
        own = LocalLogger().addHandler(memory)
        with ctx.get_logger_context(own) as logger:
            logger.error("to my own handlers")
        self.assertEqual(memory.messages, ["to my own handlers"])
        self.assertEqual(memory[0].task_config_name, "t_score")  # type: ignore[attr-defined]
        self.assertEqual(ctx.log_level, logging.ERROR)
        # The level handler it added is gone again.
        self.assertEqual(own.handlers, [memory])

    def test_read_as_a_dict_it_is_the_log_fields(self) -> None:
        ctx = context({})
        self.assertEqual(dict(ctx.get_logger_context()), ctx.log_fields())
        self.assertEqual(ctx.get_logger_context(context={"a": 1})["a"], 1)

    def test_a_context_key_a_log_record_holds_is_refused_by_name(self) -> None:
        ctx = context({})
        with self.assertRaises(ValueError) as caught:
            ctx.get_logger_context(context={"msg": "x", "page": 1, "levelno": 3})
        self.assertIn("['levelno', 'msg']", str(caught.exception))
