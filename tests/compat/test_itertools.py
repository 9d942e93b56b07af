"""triggers.itertools: the two merges of 2.x."""

from __future__ import annotations

import unittest

from triggers.itertools import merge_dict, merge_dict_recursive
from triggers.runners import merge_kwargs


class MergeDictTestCase(unittest.TestCase):
    def test_later_wins_and_inputs_are_unchanged(self) -> None:
        first = {"a": 1, "b": {"x": 1}}
        second = {"b": {"y": 2}, "c": 3}
        merged = merge_dict(first, second)
        self.assertEqual(merged, {"a": 1, "b": {"y": 2}, "c": 3})
        self.assertEqual(first, {"a": 1, "b": {"x": 1}})
        self.assertIsNot(merged, first)

    def test_shallow(self) -> None:
        inner = {"x": 1}
        self.assertIs(merge_dict({"a": inner})["a"], inner)

    def test_no_or_one_mapping(self) -> None:
        self.assertEqual(merge_dict(), {})
        only = {"a": 1}
        self.assertEqual(merge_dict(only), only)
        self.assertIsNot(merge_dict(only), only)


class MergeDictRecursiveTestCase(unittest.TestCase):
    def test_nested_mappings_merge(self) -> None:
        merged = merge_dict_recursive(
            {"a": 1, "b": {"x": 1, "deep": {"p": 1}}},
            {"b": {"y": 2, "deep": {"q": 2}}},
            {"b": {"x": "last"}, "c": [1]},
        )
        self.assertEqual(
            merged, {"a": 1, "b": {"x": "last", "y": 2, "deep": {"p": 1, "q": 2}}, "c": [1]}
        )

    def test_a_non_mapping_replaces_a_mapping_and_back(self) -> None:
        self.assertEqual(merge_dict_recursive({"a": {"x": 1}}, {"a": 5}), {"a": 5})
        self.assertEqual(merge_dict_recursive({"a": 5}, {"a": {"x": 1}}), {"a": {"x": 1}})

    def test_result_shares_nothing_with_the_inputs(self) -> None:
        source = {"a": {"x": [1]}}
        merged = merge_dict_recursive(source)
        merged["a"]["x"].append(2)
        self.assertEqual(source, {"a": {"x": [1]}})

    def test_same_result_as_the_runners_with_params_merge(self) -> None:
        with_params = {"page": {"id": 1, "lang": "en"}, "fixed": True}
        kwargs = {"page": {"id": 2}, "extra": None}
        self.assertEqual(
            merge_dict_recursive(with_params, kwargs), merge_kwargs(with_params, kwargs)
        )
        self.assertEqual(merge_dict_recursive(), {})
