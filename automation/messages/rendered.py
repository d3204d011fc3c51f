"""The result of rendering one channel section for one recipient."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Rendered:
    """One channel section rendered for one recipient."""

    channel: str
    text: str = ""
    subject: str | None = None
    html: str | None = None
    template_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    buttons: list[dict[str, str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    locale: str = "vi"
    tag: str | None = None
