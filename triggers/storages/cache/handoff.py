"""The state a dispatcher hands to the worker that runs an instance it readied.

A task run on another process (a Celery worker's child) knows nothing of
the session and would read its head, witness and record before its first
commit. The process that readied the instance has just committed that
state, so the runner sends it along with the task (as a message header,
not in the payload 2.x workers read): the head as stored, the witness it
was committed with and the instance's record. The worker's first try
starts from it; its commit checks the witness and the head's digest as
any commit does, so a state handed long ago, or outrun by a sibling's
commit, costs one refused commit (which brings the current state back)
and is never written over newer state.

The token is signed with the project's ``SECRET_KEY`` (Django's
:mod:`django.core.signing`): the head and record are pickles, and a
message broker is not trusted to hand this process pickles. A token that
does not verify, or was made for another session or instance, is ignored
(the worker reads, as without one).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, NamedTuple

from django.core import signing
from django.core.exceptions import ImproperlyConfigured

from ...locking.versions import is_version
from .read_state import Known

__all__ = ["MAX_HANDOFF_BYTES", "HandedState", "handed_known", "handoff_token", "read_handoff"]

#: the largest head and record (bytes, together) worth handing: a larger
#: session is cheaper to read than to carry in every message
MAX_HANDOFF_BYTES = 16384
#: what the signature is made for (a token of another use never verifies as one)
_SALT = "triggers.storages.cache.handoff"


class HandedState(NamedTuple):
    """A verified token's content."""

    witness: int
    head: bytes
    record: bytes


def _signer() -> signing.Signer | None:
    try:
        return signing.Signer(salt=_SALT)
    except ImproperlyConfigured:  # no SECRET_KEY: nothing can be signed
        return None


def handoff_token(
    uid: str, name: str, known: Known | None, head_key: str, witness_key: str
) -> str | None:
    """A signed token of ``known`` (a committed state) for the run of instance ``name``
    of session ``uid``; None when there is nothing to hand (no committed state, no
    record of ``name`` in it, too large, or no ``SECRET_KEY``)."""
    if not known:
        return None
    head, witness = known.values.get(head_key), known.values.get(witness_key)
    record = known.records.get(name)
    if not (type(head) is bytes and is_version(witness) and type(record) is bytes):
        return None
    if len(head) + len(record) > MAX_HANDOFF_BYTES:
        return None
    signer = _signer()
    if signer is None:
        return None
    content = {
        "uid": uid,
        "name": name,
        "witness": witness,
        "head": base64.b64encode(head).decode("ascii"),
        "record": base64.b64encode(record).decode("ascii"),
    }
    token: str = signer.sign_object(content, compress=True)
    return token


def read_handoff(token: Any, uid: str, name: str) -> HandedState | None:
    """The state a token hands for the run of instance ``name`` of session ``uid``;
    None when it does not verify, is for another session or instance, or is malformed."""
    signer = _signer()
    if signer is None or not isinstance(token, str):
        return None
    try:
        content = signer.unsign_object(token)
    except (signing.BadSignature, ValueError):
        return None
    if not (
        isinstance(content, dict) and content.get("uid") == uid and content.get("name") == name
    ):
        return None
    witness = content.get("witness")
    try:
        head = base64.b64decode(content["head"], validate=True)
        record = base64.b64decode(content["record"], validate=True)
    except (KeyError, TypeError, ValueError):
        return None
    if not is_version(witness):
        return None
    return HandedState(witness, head, record)


def handed_known(state: HandedState, head_key: str, witness_key: str, name: str) -> Known:
    """Where a try starts from a handed state (the head's digest as a commit checks it)."""
    return Known(
        {head_key: state.head, witness_key: state.witness},
        {name: state.record},
        hashlib.sha1(state.head).hexdigest(),
    )
