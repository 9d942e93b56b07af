"""A script (or a management command) that fires, then waits for every task to finish."""

from triggers import CacheStorageBackend, TriggerManager
from triggers.tasks.runners import ThreadingTaskRunner

#: t_importSubject runs in the thread that fires; the others in threads of their own.
CONFIGURATION = {
    "t_importSubject": {
        "after": ["firstPageReceived", "questionnaireComplete"],
        "run": "questionnaire.import_subject",
        "using": "sync",
    },
    "t_importResponses": {
        "after": ["t_importSubject"],
        "andEvery": "pageReceived",
        "run": "questionnaire.import_responses",
        "using": "threading",
    },
}


def import_questionnaire(uid, respondent, pages):
    manager = TriggerManager(CacheStorageBackend(uid))
    manager.update_configuration(CONFIGURATION)
    manager.fire("firstPageReceived", {"respondent": respondent})
    for number, answers in enumerate(pages, start=1):
        manager.fire("pageReceived", {"page": number, "answers": answers})
    manager.fire("questionnaireComplete", {"pages": len(pages)})

    # Every task has run once this returns, cascades included.
    ThreadingTaskRunner.join_all()
    return {instance.name: instance.status for instance in CacheStorageBackend(uid).iter_instances()}
