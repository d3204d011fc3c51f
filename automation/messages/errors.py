"""The one error of the messages package: a template that cannot be loaded or rendered."""

from __future__ import annotations

from automation.core.errors import DefinitionError


class TemplateProblem(DefinitionError):
    """A template that cannot be loaded or rendered; the message names file, section and fix."""
