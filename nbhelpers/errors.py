"""Errors that mean "the user asked for something we cannot do".

The command line turns any UserInputError into one sentence on stderr and exit
status 2; anything else is a bug and keeps its traceback.
"""


class UserInputError(ValueError):
    """A mistake in what the user asked for (a name, a number, a file)."""


class DatasetUnavailableError(UserInputError):
    """A real dataset is neither cached nor downloadable."""
