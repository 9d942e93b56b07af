"""An async view that fires a trigger and reads the session back (run by the tests)."""

from django.http import HttpRequest, JsonResponse

from triggers import CacheStorageBackend, TriggerManager

TASKS = {
    "t_sendWelcome": {"after": ["signedUp"], "run": "accounts.send_welcome"},
    "t_checkEmail": {"after": ["signedUp", "emailOpened"], "run": "accounts.check_email"},
}


async def sign_up(request: HttpRequest, uid: str) -> JsonResponse:
    manager = TriggerManager(CacheStorageBackend(uid))
    await manager.aupdate_configuration(TASKS)
    ready = await manager.afire("signedUp", {"email": request.POST["email"]})
    waiting = await manager.storage.aget_unresolved_instances()
    return JsonResponse(
        {
            "ready": [instance.name for instance in ready],
            "unresolved": sorted(instance.name for instance in waiting),
        }
    )
