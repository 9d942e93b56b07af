"""The questionnaire session: its configuration, and the application firing triggers."""

import logging

from triggers import CacheStorageBackend, TriggerManager

WORKFLOW = {
    "t_importSubject": {
        "after": ["firstPageReceived", "questionnaireComplete"],
        "run": "questionnaire.import_subject",
    },
    "t_importResponses": {
        "after": ["t_importSubject"],
        "andEvery": "pageReceived",
        "run": "questionnaire.import_responses",
    },
    "t_importBrowserMetadata": {
        "after": ["t_importSubject", "pageReceived"],
        "unless": ["isEmbeddedApplication"],
        "run": "questionnaire.import_browser_metadata",
    },
}


def start_questionnaire(uid, respondent, embedded=False):
    manager = TriggerManager(CacheStorageBackend(uid))
    manager.update_configuration(WORKFLOW)
    if embedded:
        manager.fire("isEmbeddedApplication")
    manager.fire("firstPageReceived", {"respondent": respondent})
    return manager


def page_received(manager, page, answers, user_agent=None):
    manager.fire("pageReceived", {"page": page, "answers": answers, "userAgent": user_agent})


def questionnaire_complete(manager, pages):
    manager.fire("questionnaireComplete", {"pages": pages})


audit = logging.getLogger("questionnaire.audit")


class AuditedManager(TriggerManager):
    """A manager that writes an audit line after every fire, replay and skip."""

    def _post_fire(self, trigger_name, tasks_scheduled):
        audit.info(
            "%s: %s fired, scheduled %s",
            self.storage.uid,
            trigger_name,
            [instance.name for instance in tasks_scheduled],
        )

    def _post_replay(self, task_instance):
        audit.info("%s: replayed %s", self.storage.uid, task_instance.name)

    def _post_skip(self, task_instance, cascade):
        audit.info("%s: skipped %s (cascade: %s)", self.storage.uid, task_instance.name, cascade)
