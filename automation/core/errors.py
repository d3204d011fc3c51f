"""The domain's errors, one tree, one user-facing shape (where, message, fix).

    DomainError(ValueError)            a user's input or definition is wrong; never a bug
    ├── DefinitionError                YAML segments, sequences, templates, durations
    ├── InputError                     a contact field, an address, an import row, a payload
    └── NotFound(LookupError)          a key or id that does not exist

Channel adapters have their own tree in ``channels/errors.py`` (transient vs permanent).
The CLI and the HTTP layer print ``str(error)``: ``where: message; fix``, on one line.
"""

from __future__ import annotations


class DomainError(ValueError):
    """A user mistake, told as one line: where it is, what is wrong, how to fix it."""

    def __init__(self, message: str, *, where: str = "", fix: str = "") -> None:
        self.where = where
        self.message = message
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """``where: message; fix`` with the empty parts left out."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}; {self.fix}" if self.fix else text


class DefinitionError(DomainError):
    """A segment, sequence, template or duration definition is invalid."""


class InputError(DomainError):
    """A value supplied by a user or a shop is invalid (field, address, import row)."""


class NotFound(DomainError, LookupError):
    """A key or id names nothing."""
