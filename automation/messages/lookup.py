"""Finding and loading templates: ``templates/<sequence>/<name>.yaml`` and its sections.

The folder ``settings.templates_dir`` is searched first, then the shipped ``templates/``.
A file holds one section per channel kind and optional ``locales: {en: {...}}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

from automation.core.config import Settings, get_settings
from automation.core.errors import DefinitionError
from automation.core.vocabulary import CHANNELS
from automation.dsl.yamlload import load_yaml_file, plain
from automation.messages.errors import TemplateProblem

PACKAGE_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
KINDS = CHANNELS


def template_dirs(settings: Settings | None = None) -> list[Path]:
    """Folders searched for templates, first match wins (extra dir, then package)."""
    settings = settings or get_settings()
    dirs = [Path(settings.templates_dir)] if settings.templates_dir else []
    return [*dirs, PACKAGE_TEMPLATES]


def find_template(name: str, settings: Settings | None = None) -> Path:
    """The YAML file for ``name`` (``sequence/name``); TemplateProblem when missing."""
    if ".." in Path(name).parts or name.startswith("/"):
        raise TemplateProblem(f"template {name!r}: use a relative name like order_status/shipped")
    dirs = template_dirs(settings)
    for folder in dirs:
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    where = ", ".join(str(d) for d in dirs)
    raise TemplateProblem(f"template {name!r} not found (looked for {name}.yaml in {where})")


def list_templates(settings: Settings | None = None) -> list[str]:
    """Every template name available, sorted."""
    names: set[str] = set()
    for folder in template_dirs(settings):
        if folder.is_dir():
            for path in [*folder.rglob("*.yaml"), *folder.rglob("*.yml")]:
                names.add(path.relative_to(folder).with_suffix("").as_posix())
    return sorted(names)


@lru_cache(maxsize=512)
def _load_file(path: str, mtime: float) -> dict[str, Any]:
    try:  # the definition language's loader: size, alias and depth limits
        data = plain(load_yaml_file(path))
    except DefinitionError as exc:
        raise TemplateProblem(str(exc)) from None
    if not isinstance(data, dict):
        raise TemplateProblem(f"{path}: expected a mapping with sections {', '.join(KINDS)}")
    unknown = set(data) - {*KINDS, "locales"}
    if unknown:
        raise TemplateProblem(
            f"{path}: unknown section(s) {sorted(unknown)}; allowed: {', '.join(KINDS)}, locales"
        )
    return data


_snapshot: ContextVar[dict[tuple[str, str | None], dict[str, Any]] | None] = ContextVar(
    "template_snapshot", default=None
)


@contextmanager
def snapshot() -> Iterator[None]:
    """Inside the block each template is found and checked for changes once (a send batch
    renders one template for many rows); outside, every load looks at the file again."""
    token = _snapshot.set({})
    try:
        yield
    finally:
        _snapshot.reset(token)


def load_template(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """The parsed YAML of template ``name`` (cached until the file changes)."""
    memo = _snapshot.get()
    key = (name, (settings or get_settings()).templates_dir)
    if memo is not None and key in memo:
        return memo[key]
    path = find_template(name, settings)
    data = _load_file(str(path), path.stat().st_mtime)
    if memo is not None:
        memo[key] = data
    return data


def base_locale(locale: str | None) -> str:
    """``en-US`` / ``en_US`` -> ``en``; None -> the default locale."""
    value = (locale or get_settings().default_locale or "vi").replace("_", "-")
    return value.split("-")[0].lower()


def section(
    name: str, channel: str, locale: str | None, settings: Settings | None = None
) -> tuple[dict[str, Any], str]:
    """The channel section for ``locale`` (falls back to the default language) and its locale."""
    data = load_template(name, settings)
    loc = base_locale(locale)
    variants = data.get("locales") or {}
    localized = variants.get(loc) if loc != base_locale(None) else None
    if isinstance(localized, dict) and channel in localized:
        chosen, used = variants[loc][channel], loc
    elif channel in data:
        chosen, used = data[channel], base_locale(None)
    else:
        raise TemplateProblem(f"template {name!r} has no {channel!r} section")
    if not isinstance(chosen, dict):
        raise TemplateProblem(f"template {name!r}: section {channel!r} must be a mapping")
    return chosen, used
