"""What the database backend's columns hold at most (the models size them by it)."""

__all__ = ["DIGEST_LENGTH", "LONGEST_TASK_NAME", "NAME_LENGTH", "UID_LENGTH"]

#: longest uid (in characters; the storage layer refuses uids over 150 bytes)
UID_LENGTH = 150
#: longest task or instance name the database backend stores
NAME_LENGTH = 255
#: a task name leaves room for ``#<number>`` in its instances' names
LONGEST_TASK_NAME = NAME_LENGTH - 20
#: digest of a configuration set (SHA-256, hex)
DIGEST_LENGTH = 64
