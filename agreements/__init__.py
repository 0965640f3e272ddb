"""Agreements as data: schema, loader and expansion into task occurrences."""

from agreements.expansion import TaskOccurrence, expand
from agreements.loader import LoadedAgreement, LoadError, Problem, load_agreement, load_directory
from agreements.models import Agreement, Directory

__all__ = [
    "Agreement",
    "Directory",
    "LoadError",
    "LoadedAgreement",
    "Problem",
    "TaskOccurrence",
    "expand",
    "load_agreement",
    "load_directory",
]
