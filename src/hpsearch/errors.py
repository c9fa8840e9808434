"""Domain errors. Each message says what is wrong *and* how to fix it.

The CLI is the only place that turns these into exit codes (see ``cli.py``); library
code raises them and never prints or exits.
"""

from __future__ import annotations


class HpsearchError(Exception):
    """A problem the user can fix; ``str(err)`` is the one line we show them.

    ``detail`` is what ``--debug`` adds: the traceback of the process where it really happened
    (a worker's, when the supervisor reports a worker's failure).
    """

    exit_code = 1

    def __init__(self, *args: object, detail: str | None = None) -> None:
        super().__init__(*args)
        self.detail = detail


class BadOption(HpsearchError):
    """An option value that cannot work (out of range, malformed, given without the option it
    needs): a usage error, exit 2 like the ones the option parser itself reports."""

    exit_code = 2


class StudyModuleError(HpsearchError):
    """A study module that cannot be found, imported, or lacks a declaration."""


class DatasetMissing(HpsearchError):
    """Dataset files are absent and could not be downloaded."""


class DatasetError(HpsearchError):
    """Dataset files that are there but unusable: an unreadable image, too few classes, a
    test class the training split lacks, a folder that changed since the search."""


class TestSplitForbidden(HpsearchError):
    """Something tried to load the held-out test split during a search."""

    __test__ = False  # not a pytest test class, despite the name


class StorageError(HpsearchError):
    """A storage URL that is malformed, unreachable, or holds no such study."""


class TrialsFailing(HpsearchError):
    """Trials keep failing with the same error; looping would only burn the budget."""

    exit_code = 3


class ModelError(HpsearchError):
    """A model spec that is not registered, cannot be rebuilt, or lacks its weights file."""


class InfeasibleModel(ValueError):
    """A sampled architecture that cannot exist for this data (e.g. valid convolutions that
    shrink the image below one pixel). The trial is pruned with this reason, not failed:
    the space holds the point, the data rules it out, and it says nothing about the code."""


class UnsafePath(HpsearchError):
    """A study name or output file that would put files where they do not belong."""


class BadStorageURL(BadOption, StorageError):
    """A storage URL hpsearch cannot read (malformed, or a backend it does not support): exit 2."""


class BadStudyName(BadOption, UnsafePath):
    """A study name that could not be a file name everywhere it is used (``--name``): exit 2."""
