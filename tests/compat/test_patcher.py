"""triggers.patcher: attributes set for a while, then exactly what was there before."""

from __future__ import annotations

import unittest

from triggers.patcher import AttrPatcher, BasePatcher


class Base:
    inherited = "base"

    @staticmethod
    def helper() -> str:
        return "static"


class Child(Base):
    own = "child"


class AttrPatcherTestCase(unittest.TestCase):
    def test_context_manager_sets_and_restores(self) -> None:
        obj = Child()
        obj.value = 1  # type: ignore[attr-defined]
        with AttrPatcher(obj, value=2, own="patched") as patcher:
            self.assertIsInstance(patcher, AttrPatcher)
            self.assertEqual(obj.value, 2)  # type: ignore[attr-defined]
            self.assertEqual(obj.own, "patched")
        self.assertEqual(obj.value, 1)  # type: ignore[attr-defined]
        # ``own`` was the class's, not the instance's: the instance holds none again.
        self.assertNotIn("own", vars(obj))
        self.assertEqual(obj.own, "child")

    def test_attribute_that_did_not_exist_is_deleted(self) -> None:
        obj = Child()
        with AttrPatcher(obj, brand_new=42):
            self.assertEqual(obj.brand_new, 42)  # type: ignore[attr-defined]
        self.assertFalse(hasattr(obj, "brand_new"))

    def test_inherited_class_attribute_is_not_frozen_on_the_subclass(self) -> None:
        with AttrPatcher(Child, inherited="patched"):
            self.assertEqual(Child.inherited, "patched")
            self.assertEqual(Base.inherited, "base")
        self.assertNotIn("inherited", vars(Child))
        Base.inherited = "changed later"
        try:
            self.assertEqual(Child.inherited, "changed later")
        finally:
            Base.inherited = "base"

    def test_descriptors_come_back_raw(self) -> None:
        with AttrPatcher(Base, helper=staticmethod(lambda: "patched")):
            self.assertEqual(Base().helper(), "patched")
        self.assertIsInstance(vars(Base)["helper"], staticmethod)
        self.assertEqual(Base().helper(), "static")

    def test_module_attributes(self) -> None:
        import triggers.itertools as module

        original = module.merge_dict
        with AttrPatcher(module, merge_dict="patched", not_there=1):
            self.assertEqual(module.merge_dict, "patched")
        self.assertIs(module.merge_dict, original)
        self.assertFalse(hasattr(module, "not_there"))

    def test_mapping_for_names_that_are_not_keywords(self) -> None:
        obj = Child()
        with AttrPatcher(obj, {"class": 1, "with space": 2}):
            self.assertEqual(getattr(obj, "class"), 1)
        self.assertFalse(hasattr(obj, "class"))
        self.assertFalse(hasattr(obj, "with space"))

    def test_start_and_stop_by_hand(self) -> None:
        obj = Child()
        patcher = AttrPatcher(obj, own="patched").start()
        self.addCleanup(lambda: patcher.stop() if patcher.is_active else None)
        self.assertTrue(patcher.is_active)
        self.assertEqual(obj.own, "patched")
        with self.assertRaises(RuntimeError):
            patcher.start()
        patcher.stop()
        self.assertFalse(patcher.is_active)
        self.assertEqual(obj.own, "child")
        with self.assertRaises(RuntimeError):
            patcher.stop()
        # Reusable once stopped.
        with patcher:
            self.assertEqual(obj.own, "patched")
        self.assertEqual(obj.own, "child")

    def test_restored_when_the_block_raises(self) -> None:
        obj = Child()
        with self.assertRaises(ZeroDivisionError), AttrPatcher(obj, own="patched"):
            1 / 0
        self.assertEqual(obj.own, "child")

    def test_nested_patchers_of_one_attribute_unwind_in_order(self) -> None:
        obj = Child()
        with AttrPatcher(obj, own="outer"):
            with AttrPatcher(obj, own="inner"):
                self.assertEqual(obj.own, "inner")
            self.assertEqual(obj.own, "outer")
        self.assertNotIn("own", vars(obj))

    def test_attribute_deleted_by_the_code_under_test(self) -> None:
        obj = Child()
        with AttrPatcher(obj, temporary=1):
            del obj.temporary  # type: ignore[attr-defined]
        self.assertFalse(hasattr(obj, "temporary"))

    def test_failed_apply_undoes_what_it_set(self) -> None:
        class Picky:
            __slots__ = ("allowed",)

        obj = Picky()
        obj.allowed = "before"
        with self.assertRaises(AttributeError):
            AttrPatcher(obj, {"allowed": "after", "forbidden": 1}).start()
        self.assertEqual(obj.allowed, "before")

    def test_needs_something_to_set(self) -> None:
        with self.assertRaises(ValueError):
            AttrPatcher(Child())


class CustomPatcherTestCase(unittest.TestCase):
    def test_subclass_of_base_patcher(self) -> None:
        events: list[str] = []

        class Recording(BasePatcher):
            def _apply(self) -> None:
                events.append("apply")

            def _restore(self) -> None:
                events.append("restore")

        with Recording():
            events.append("body")
        self.assertEqual(events, ["apply", "body", "restore"])
