"""TaskConfig and TaskInstance, property by property, as the contract describes them."""

import logging
from datetime import datetime

import pytest

from triggers.errors import InvalidTaskConfig
from triggers.types import TaskConfig, TaskInstance


def config(**overrides):
    definition = {"name": "t_score", "after": ["pageSaved", "sessionStarted"], "run": "score"}
    definition.update(overrides)
    return TaskConfig(**definition)


# --------------------------------------------------------------------------- TaskConfig

# (parametrized by name: test ids stay readable and parameters stay hashable)
ROUND_TRIP_CASES = {
    "plain": {"after": ["a"], "run": "r"},
    "unless-using": {"after": ["a", "b"], "run": "r", "unless": ["c"], "using": "sync"},
    "and-every-params": {"after": [], "run": "r", "andEvery": "tick", "withParams": {"deep": {"n": [1, 2]}}},
    "extra-keys": {"after": ["a"], "run": "r", "description": "kept", "priority": 3},
}

MALFORMED_CASES = {
    "empty-run": ({"after": ["a"], "run": ""}, "''"),
    "int-run": ({"after": ["a"], "run": 5}, "5"),
    "int-trigger": ({"after": [3], "run": "r"}, "3"),
    "unhashable-trigger": ({"after": ["a", ["b"]], "run": "r"}, "['b']"),
    "unhashable-unless": ({"after": ["a"], "run": "r", "unless": [{"c": 1}]}, "{'c': 1}"),
    "string-after": ({"after": "ab", "run": "r"}, "'ab'"),
    "list-and-every": ({"after": ["a"], "run": "r", "andEvery": ["x"]}, "['x']"),
    "string-unless": ({"after": ["a"], "run": "r", "unless": "cancel"}, "'cancel'"),
    "list-params": ({"after": ["a"], "run": "r", "withParams": [1]}, "[1]"),
    "int-using": ({"after": ["a"], "run": "r", "using": 7}, "7"),
}


class TestTaskConfig:
    def test_attributes(self):
        task = TaskConfig(
            "t_score",
            after=["b", "a"],
            run="score",
            unless=["cancel"],
            using="sync",
            withParams={"weight": 2},
            andEvery="pageSaved",
        )
        assert task.name == "t_score"
        assert task.run == "score"
        assert task.using == "sync"
        assert task.with_params == {"weight": 2}
        assert task.and_every == "pageSaved"
        assert task.after == {"a", "b", "pageSaved"}
        assert task.unless == {"cancel"}
        assert task.extra == {}

    def test_defaults(self):
        task = TaskConfig("t", after=["a"], run="r")
        assert task.unless == set()
        assert task.using is None
        assert task.with_params == {}
        assert task.and_every is None
        assert task.extra == {}

    def test_and_every_is_added_to_after(self):
        task = TaskConfig("t", after=[], run="r", andEvery="tick")
        assert task.after == {"tick"}
        assert task.after_sorted == ["tick"]

    def test_sorted_views(self):
        task = TaskConfig("t", after=["c", "a", "b"], run="r", unless=["z", "y"])
        assert task.after_sorted == ["a", "b", "c"]
        assert task.unless_sorted == ["y", "z"]

    def test_uses_trigger(self):
        task = TaskConfig("t", after=["a"], run="r", unless=["u"], andEvery="e")
        assert task.uses_trigger("a")
        assert task.uses_trigger("u")
        assert task.uses_trigger("e")
        assert not task.uses_trigger("t")
        assert not task.uses_trigger("r")

    def test_str_is_the_name(self):
        assert str(config()) == "t_score"

    def test_serialize_shape(self):
        task = TaskConfig(
            "t", after=["b", "a"], run="r", unless=["u"], using="sync", withParams={"x": 1}, andEvery="e"
        )
        assert task.serialize() == {
            "after": ["a", "b", "e"],
            "andEvery": "e",
            "run": "r",
            "unless": ["u"],
            "using": "sync",
            "withParams": {"x": 1},
        }

    @pytest.mark.parametrize("case", sorted(ROUND_TRIP_CASES))
    def test_serialize_round_trip(self, case):
        definition = ROUND_TRIP_CASES[case]
        original = TaskConfig(name="t", **definition)
        again = TaskConfig(name="t", **original.serialize())
        assert again.serialize() == original.serialize()
        assert again == original
        assert again.after == original.after
        assert again.unless == original.unless
        assert again.and_every == original.and_every
        assert again.with_params == original.with_params
        assert again.extra == original.extra

    def test_unknown_keys_are_kept_and_written_back(self):
        task = TaskConfig("t", after=["a"], run="r", description="import", retries={"max": 3})
        assert task.extra == {"description": "import", "retries": {"max": 3}}
        data = task.serialize()
        assert data["description"] == "import"
        assert data["retries"] == {"max": 3}

    def test_serialized_lists_are_lists(self):
        data = TaskConfig("t", after={"b", "a"}, run="r", unless=("d", "c")).serialize()
        assert data["after"] == ["a", "b"]
        assert data["unless"] == ["c", "d"]

    @pytest.mark.parametrize("case", sorted(MALFORMED_CASES))
    def test_malformed_configs_name_the_value(self, case):
        kwargs, bad = MALFORMED_CASES[case]
        with pytest.raises(InvalidTaskConfig) as info:
            TaskConfig("t_bad", **kwargs)
        assert "t_bad" in str(info.value)
        assert bad in str(info.value)
        assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- TaskInstance


def instance(status=None, metadata=None, kwargs=None, abandon_state=None, task=None):
    return TaskInstance(
        "t_score#0",
        task or config(unless=["cancel", "abort"]),
        status=status,
        metadata=metadata,
        kwargs=kwargs,
        abandonState=abandon_state,
    )


ALL_STATUSES = [
    TaskInstance.STATUS_ABANDONED,
    TaskInstance.STATUS_FAILED,
    TaskInstance.STATUS_FINISHED,
    TaskInstance.STATUS_REPLAYED,
    TaskInstance.STATUS_RUNNING,
    TaskInstance.STATUS_SCHEDULED,
    TaskInstance.STATUS_SKIPPED,
    TaskInstance.STATUS_UNSTARTED,
]


class TestTaskInstanceConstants:
    def test_statuses(self):
        assert TaskInstance.STATUS_ABANDONED == "abandoned"
        assert TaskInstance.STATUS_FAILED == "failed"
        assert TaskInstance.STATUS_FINISHED == "finished"
        assert TaskInstance.STATUS_REPLAYED == "replayed"
        assert TaskInstance.STATUS_RUNNING == "running"
        assert TaskInstance.STATUS_SCHEDULED == "scheduled"
        assert TaskInstance.STATUS_SKIPPED == "skipped"
        assert TaskInstance.STATUS_UNSTARTED == "unstarted"

    def test_metadata_keys(self):
        assert TaskInstance.META_ACTUAL_KWARGS == "actualKwargs"
        assert TaskInstance.META_ACTUAL_SHARD == "actualShard"
        assert TaskInstance.META_COOLDOWN == "cooldown"
        assert TaskInstance.META_DEPTH == "depth"
        assert TaskInstance.META_EXCEPTION_CONTEXT == "exceptionContext"
        assert TaskInstance.META_EXCEPTION_INFO == "exceptionInfo"
        assert TaskInstance.META_EXCEPTION_TYPE == "exceptionType"
        assert TaskInstance.META_LOG_LEVEL == "logLevel"
        assert TaskInstance.META_LOGS_RESOLVED == "logsResolved"
        assert TaskInstance.META_PARENT == "parent"
        assert TaskInstance.META_RESULT == "result"
        assert TaskInstance.META_TIMESTAMPS == "timestamps"
        assert TaskInstance.TIMESTAMP_CREATED == "created"
        assert TaskInstance.TIMESTAMP_LAST_MODIFIED == "lastModified"
        assert TaskInstance.LOG_LEVEL_THRESHOLD == logging.ERROR


class TestTaskInstance:
    def test_defaults(self):
        task = config()
        i = TaskInstance("t_score#0", task)
        assert i.name == "t_score#0"
        assert i.config is task
        assert i.status == "unstarted"
        assert i.metadata == {}
        assert i.kwargs == {}
        assert i.abandon_state == set()

    def test_abandon_state_is_a_set(self):
        assert instance(abandon_state=["cancel", "cancel"]).abandon_state == {"cancel"}

    @pytest.mark.parametrize("status", ALL_STATUSES)
    def test_status_predicates(self, status):
        i = instance(status=status)
        assert i.can_schedule is (status == "unstarted")
        assert i.can_skip is (status == "failed")
        assert i.can_replay is (status == "failed")
        assert i.is_resolved is (status in {"abandoned", "finished", "skipped", "replayed"})
        assert i.logs_relevant is (status not in {"abandoned", "replayed", "skipped"})

    def test_can_abandon_needs_every_unless_trigger(self):
        i = instance()
        assert not i.can_abandon
        i.abandon_state.add("cancel")
        assert not i.can_abandon
        i.abandon_state.add("abort")
        assert i.can_abandon

    def test_cannot_abandon_without_unless(self):
        i = instance(task=config())
        assert not i.can_abandon

    def test_cannot_abandon_once_started(self):
        i = instance(status="running", abandon_state=["cancel", "abort"])
        assert not i.can_abandon

    def test_can_run_needs_every_after_trigger(self):
        i = instance()
        assert not i.can_run
        i.kwargs["pageSaved"] = {"page": 1}
        assert not i.can_run
        i.kwargs["sessionStarted"] = {}
        assert i.can_run

    def test_can_run_counts_triggers_fired_without_kwargs(self):
        i = instance(kwargs={"pageSaved": None, "sessionStarted": None})
        assert i.can_run

    def test_cannot_run_when_it_can_abandon(self):
        i = instance(kwargs={"pageSaved": {}, "sessionStarted": {}}, abandon_state=["cancel", "abort"])
        assert i.can_abandon
        assert not i.can_run

    def test_cannot_run_once_scheduled(self):
        i = instance(status="scheduled", kwargs={"pageSaved": {}, "sessionStarted": {}})
        assert not i.can_run

    def test_cooldown_and_depth(self):
        i = instance()
        assert i.cooldown == 0
        assert i.depth == 0
        i.metadata.update(cooldown=30, depth=2)
        assert i.cooldown == 30
        assert i.depth == 2

    def test_last_modified(self):
        i = instance()
        assert i.last_modified is None
        i.metadata["timestamps"] = {"created": datetime(2020, 1, 1)}
        assert i.last_modified is None
        i.metadata["timestamps"]["lastModified"] = datetime(2020, 1, 2, 3, 4)
        assert i.last_modified == datetime(2020, 1, 2, 3, 4)

    def test_log_level(self):
        i = instance()
        assert i.log_level == logging.NOTSET
        assert i.log_level_name == "NOTSET"
        i.metadata["logLevel"] = logging.WARNING
        assert i.log_level == logging.WARNING
        assert i.log_level_name == "WARNING"
        i.metadata["logLevel"] = logging.CRITICAL
        assert i.log_level_name == "CRITICAL"

    def test_logs_resolved(self):
        i = instance(status="failed")
        assert i.logs_resolved  # nothing logged
        i.metadata["logLevel"] = logging.WARNING
        assert i.logs_resolved  # below the threshold
        i.metadata["logLevel"] = logging.ERROR
        assert not i.logs_resolved
        i.metadata["logsResolved"] = True
        assert i.logs_resolved

    @pytest.mark.parametrize("status", ["abandoned", "replayed", "skipped"])
    def test_logs_of_irrelevant_instances_are_resolved(self, status):
        i = instance(status=status, metadata={"logLevel": logging.CRITICAL})
        assert not i.logs_relevant
        assert i.logs_resolved

    def test_apply_trigger_records_after_kwargs(self):
        i = instance()
        assert i.apply_trigger("pageSaved", {"page": 1})
        assert i.kwargs == {"pageSaved": {"page": 1}}

    def test_apply_trigger_first_firing_wins(self):
        i = instance()
        assert i.apply_trigger("pageSaved", {"page": 1})
        assert not i.apply_trigger("pageSaved", {"page": 2})
        assert i.kwargs == {"pageSaved": {"page": 1}}

    def test_apply_trigger_unless(self):
        i = instance()
        assert i.apply_trigger("cancel", {"why": "user"})
        assert i.abandon_state == {"cancel"}
        assert i.kwargs == {}
        # An unless trigger that fires again still counts as taken.
        assert i.apply_trigger("cancel", {})
        assert i.abandon_state == {"cancel"}

    def test_apply_trigger_in_after_and_unless(self):
        task = TaskConfig("t", after=["x"], run="r", unless=["x"])
        i = TaskInstance("t#0", task)
        assert i.apply_trigger("x", {"n": 1})
        assert i.kwargs == {"x": {"n": 1}}
        assert i.abandon_state == {"x"}

    def test_apply_trigger_unrelated(self):
        i = instance()
        assert not i.apply_trigger("somethingElse", {"a": 1})
        assert i.kwargs == {}
        assert i.abandon_state == set()

    @pytest.mark.parametrize("status", [s for s in ALL_STATUSES if s != "unstarted"])
    def test_apply_trigger_only_while_unstarted(self, status):
        i = instance(status=status)
        assert not i.apply_trigger("pageSaved", {"page": 1})
        assert not i.apply_trigger("cancel", {})
        assert i.kwargs == {}
        assert i.abandon_state == set()

    def test_serialize_shape(self):
        stamp = datetime(2021, 5, 6, 7, 8, 9)
        i = instance(
            status="failed",
            metadata={"timestamps": {"created": stamp}, "logLevel": 40},
            kwargs={"pageSaved": {"page": 1}},
            abandon_state=["cancel"],
        )
        assert i.serialize() == {
            "abandonState": ["cancel"],
            "kwargs": {"pageSaved": {"page": 1}},
            "metadata": {"timestamps": {"created": stamp}, "logLevel": 40},
            "status": "failed",
            "task": "t_score",
        }

    def test_serialize_abandon_state_is_a_list(self):
        data = instance(abandon_state={"cancel", "abort"}).serialize()
        assert data["abandonState"] == ["abort", "cancel"]

    def test_serialized_form_rebuilds(self):
        task = config(unless=["cancel"])
        i = TaskInstance("t_score#3", task, status="running", metadata={"depth": 1}, kwargs={"pageSaved": {}})
        data = i.serialize()
        again = TaskInstance(
            "t_score#3",
            task,
            status=data["status"],
            metadata=data["metadata"],
            kwargs=data["kwargs"],
            abandonState=data["abandonState"],
        )
        assert again.serialize() == data

    def test_str(self):
        assert str(instance()) == "t_score#0 (unstarted)"
        assert str(instance(status="finished")) == "t_score#0 (finished)"
