"""The questionnaire's tasks, as an application's ``<app>/tasks.py`` would hold them."""

import zlib

from triggers.task import TriggerTask, task

#: Stands in for the application's database.
SUBJECTS = {}
RESPONSES = []
#: How many more times the subject service is "unavailable" (for the retry example).
OUTAGE = {"remaining": 0}


class SubjectServiceUnavailable(Exception):
    pass


def create_subject(respondent):
    if OUTAGE["remaining"] > 0:
        OUTAGE["remaining"] -= 1
        raise SubjectServiceUnavailable("the subject service did not answer")
    subject_id = zlib.crc32(respondent["email"].encode()) % 100_000
    SUBJECTS[subject_id] = respondent
    return subject_id


class ImportSubject(TriggerTask):
    """Creates the subject once the first page and the completion are in."""

    name = "questionnaire.import_subject"
    max_retries = 5

    def _run(self, context):
        respondent = context.trigger_kwargs["firstPageReceived"]["respondent"]
        try:
            subject_id = create_subject(respondent)
        except SubjectServiceUnavailable as exc:
            # Fails this run and replays it; past max_retries: MaxRetriesExceeded.
            self.retry(exc=exc, metadata={"service": "subjects"})
        context.logger.info("created subject %s", subject_id)
        return {"subjectId": subject_id}


@task("questionnaire.import_responses")
def import_responses(context):
    """Stores one page's answers (runs once per page)."""
    subject_id = context.trigger_kwargs["t_importSubject"]["subjectId"]
    page = context.trigger_kwargs["pageReceived"]
    for question, answer in sorted(page["answers"].items()):
        RESPONSES.append((subject_id, page["page"], question, answer))
    return {"page": page["page"], "imported": len(page["answers"])}


@task("questionnaire.import_browser_metadata")
def import_browser_metadata(context):
    """Records the subject's browser; skipped when the page did not say."""
    agent = context.trigger_kwargs["pageReceived"].get("userAgent")
    if not agent:
        context.task.skip({"reason": "no user agent"})
    product = agent.rsplit(" ", 1)[-1]
    if "/" not in product:
        context.logger.warning("unrecognised user agent %r", agent)
    browser, _, version = product.partition("/")
    return {"browser": browser, "version": version}
