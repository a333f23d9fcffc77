"""Errors the engine raises on purpose. Their message is one line a user can act on."""

from __future__ import annotations


class RecastError(Exception):
    """Base class: a message that names the problem and the fix."""

    exit_code = 2


class InputError(RecastError):
    """Bad input from the user: a field, a file, a range."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class ModelError(RecastError):
    """A model folder that cannot be used (wrong layout, pickle weights, missing files)."""


class LimitError(RecastError):
    """Input over a configured size limit."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class Cancelled(RecastError):
    """The cancel flag was set; raised between steps."""

    exit_code = 130

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)
