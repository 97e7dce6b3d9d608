"""Errors that mean "the user asked for something we cannot do".

The command line turns any UserInputError into one sentence on stderr and exit
status 2; anything else is a bug and keeps its traceback.
"""


class UserInputError(ValueError):
    """A mistake in what the user asked for (a name, a number, a file)."""


class DatasetUnavailableError(UserInputError):
    """A real dataset is neither cached nor downloadable."""


class StorageError(OSError):
    """A file could not be written: the disk is full, the folder became read-only, ...

    Not the user's input (the command line exits 1, not 2), but still one sentence: a
    traceback from deep inside torch.save says nothing a user can act on.
    """

    def __str__(self) -> str:
        return self.strerror or super().__str__()
