"""What operators do with sessions: look at them, mend them, draw them, move them.

One module per concern (:mod:`.show`, :mod:`.unresolved`, :mod:`.actions`,
:mod:`.graph`, :mod:`.transfer` with its :mod:`.codec`); :mod:`.cli` holds
the arguments shared by ``manage.py triggers`` and ``python -m triggers``.
"""
