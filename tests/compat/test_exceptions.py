"""triggers.exceptions.with_context: a dict that travels with the exception."""

from __future__ import annotations

import unittest

from triggers.errors import TriggersError
from triggers.exceptions import InvalidTriggerKwargs, with_context


class WithContextTestCase(unittest.TestCase):
    def test_attaches_and_returns_the_exception(self) -> None:
        exc = ValueError("bad")
        self.assertIs(with_context(exc, {"key": "value"}), exc)
        self.assertEqual(exc.context, {"key": "value"})  # type: ignore[attr-defined]

    def test_raise_form(self) -> None:
        with self.assertRaises(KeyError) as caught:
            raise with_context(KeyError("k"), {"where": "lookup"})
        self.assertEqual(caught.exception.context, {"where": "lookup"})  # type: ignore[attr-defined]

    def test_merges_with_a_context_already_there(self) -> None:
        exc = with_context(RuntimeError(), {"a": 1, "b": 1})
        with_context(exc, {"b": 2, "c": 3})
        self.assertEqual(exc.context, {"a": 1, "b": 2, "c": 3})  # type: ignore[attr-defined]

    def test_caller_dict_is_not_shared(self) -> None:
        given = {"a": 1}
        exc = with_context(RuntimeError(), given)
        given["a"] = 2
        self.assertEqual(exc.context, {"a": 1})  # type: ignore[attr-defined]

    def test_non_mapping_context_is_replaced(self) -> None:
        exc = RuntimeError()
        exc.context = "not a dict"  # type: ignore[attr-defined]
        with_context(exc, {"a": 1})
        self.assertEqual(exc.context, {"a": 1})  # type: ignore[attr-defined]


class InvalidTriggerKwargsTestCase(unittest.TestCase):
    def test_names_every_bad_value_and_carries_them_as_context(self) -> None:
        exc = InvalidTriggerKwargs({"t_b": {"x": "too big"}, "t_a": {"y": "missing", "z": "nope"}})
        self.assertIsInstance(exc, TriggersError)
        self.assertIsInstance(exc, ValueError)
        self.assertEqual(
            str(exc), "invalid trigger kwargs: t_a.y: missing; t_a.z: nope; t_b.x: too big"
        )
        self.assertEqual(exc.context["filter_errors"], exc.errors)  # type: ignore[attr-defined]
