"""Imported by triggers.task.get_task on a miss, never by name."""

from triggers.task import task


@task("tests.discovered")
def discovered(context):
    return {"found": True}
