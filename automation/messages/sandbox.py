"""The one sandboxed Jinja2 environment, with hard limits, and rendering one string with it.

Templates render in an ImmutableSandboxedEnvironment with StrictUndefined and the
filters of :mod:`automation.messages.filters`. On top of Jinja's sandbox every loop
is counted, ``range`` is bounded, ``*``, ``+``, ``**`` and ``~`` are checked before
they allocate, and calls and output are watched (see :mod:`automation.messages.limits`).
Any error in a template becomes a one-line TemplateProblem naming template and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    nodes,
    pass_context,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from automation.messages import limits
from automation.messages.errors import TemplateProblem
from automation.messages.filters import FILTERS
from automation.messages.lookup import PACKAGE_TEMPLATES

#: Built-in filters whose numeric argument or result can be made huge.
_SIZED_FILTERS = ("center", "indent", "wordwrap", "format", "join", "replace")
#: Of those, the ones whose second argument is a width.
_WIDTH_FILTERS = ("center", "indent", "wordwrap")
#: ``str`` methods whose integer argument is a width.
_WIDTH_METHODS = ("center", "ljust", "rjust", "zfill", "expandtabs")


@pass_context
def _loop_guard(ctx: Context, items: Any) -> Any:
    return limits.guarded(items)


@pass_context
def _size_guard(ctx: Context, value: Any) -> Any:
    return limits.check_size(value, "a joined text")


def _sized(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        limits.current().tick()
        if name == "replace":
            limits.check_replace(*args[1:4])
        elif name == "format":
            limits.check_format(args[0])
        elif name in _WIDTH_FILTERS:
            limits.check_width(name, (*args[1:], *kwargs.values()))
        return limits.check_size(func(*args, **kwargs), f"|{name}")

    return checked


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus loop, range, size and time limits."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = limits.safe_range
        for name in _SIZED_FILTERS:
            self.filters[name] = _sized(name, self.filters[name])
        self.filters.update(FILTERS)
        self.filters["_loop_guard"] = _loop_guard
        self.filters["_size_guard"] = _size_guard

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then route every loop and ``~`` concatenation through a guard filter."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            at = loop.lineno
            loop.iter = nodes.Filter(loop.iter, "_loop_guard", [], [], None, None, lineno=at)
        for concat in list(tree.find_all(nodes.Concat)):
            inner = nodes.Concat(concat.nodes, lineno=concat.lineno)
            guard = nodes.Filter(inner, "_size_guard", [], [], None, None, lineno=concat.lineno)
            concat.nodes = [guard]
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``+``, ``**``, ``%`` with their result size checked first."""
        limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Every call (macros included) checks the clock and the size of what it returns."""
        limits.current().tick()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        name, owner = getattr(method, "__name__", ""), getattr(method, "__self__", None)
        if isinstance(owner, str):
            if name == "replace" and len(args) >= 2:
                limits.check_replace(owner, *args[:2])
            elif name in ("format", "format_map"):
                limits.check_format(owner)
            elif name in _WIDTH_METHODS:
                limits.check_width(name, (*args, *kwargs.values()))
        return limits.check_size(super().call(__context, __obj, *args, **kwargs), "a call result")


@lru_cache(maxsize=4)
def environment(extra_dir: str | None = None) -> LimitedSandbox:
    """The one sandboxed environment (per extra template folder)."""
    search = [str(Path(extra_dir))] if extra_dir else []
    search.append(str(PACKAGE_TEMPLATES))
    return LimitedSandbox(
        loader=ChoiceLoader([FileSystemLoader(search)]),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        finalize=limits.emit,
    )


@lru_cache(maxsize=4096)
def _compile(source: str, html: bool, extra_dir: str | None) -> Template:
    env = environment(extra_dir)
    if html:
        source = "{% autoescape true %}" + source + "{% endautoescape %}"
    return env.from_string(source)


@lru_cache(maxsize=4096)
def _globals(template: Template) -> dict[str, Any]:
    """The template's globals as one plain dict (Jinja chains environment and template
    globals, and merges the chain into every render's context again)."""
    return dict(template.globals)


def _generate(template: Template, context: dict[str, Any]) -> Iterator[str]:
    """``template.generate(context)`` with the globals merged once per template."""
    env, names = template.environment, _globals(template)
    ctx = env.context_class(env, {**names, **context}, template.name, template.blocks, names)
    try:
        yield from template.root_render_func(ctx)
    except Exception:
        yield env.handle_exception()  # raises, the traceback pointing into the template


def _stream(template: Template, context: dict[str, Any]) -> str:
    parts: list[str] = []
    size = 0
    with limits.budget():
        for part in _generate(template, context):
            size += len(part)
            if size > limits.MAX_OUTPUT:
                raise limits.RenderLimit(f"output over {limits.MAX_OUTPUT:,} characters")
            parts.append(part)
    return "".join(parts)


#: Between the fields of a section rendered as one template (a noncharacter: never text).
SEPARATOR = "\ufdd0"


@lru_cache(maxsize=1024)
def _combined(sources: tuple[str, ...], extra_dir: str | None) -> Template:
    """Plain-text fields as one template, each in its own scope (a ``set`` stays in its
    field); each must compile alone first, so a syntax error is reported per field."""
    for source in sources:
        _compile(source, False, extra_dir)
    body = SEPARATOR.join("{% with %}" + source + "{% endwith %}" for source in sources)
    return environment(extra_dir).from_string(body)


def render_fields(
    fields: list[tuple[str, Any]], context: dict[str, Any], extra_dir: str | None = None
) -> list[str]:
    """Render plain-text fields ``(where, source)``: :func:`render_text` on each, in one pass.

    The fields render as one template (one Jinja context instead of one per field) in a
    trial budget; if that fails, or a value holds the separator, they render one by one
    on the untouched budget, so results and errors are exactly :func:`render_text`'s.
    """
    texts = [None if source is None else str(source) for _, source in fields]
    sources = tuple(text for text in texts if text is not None)
    if len(sources) > 1:
        try:
            with limits.trial():
                parts = _stream(_combined(sources, extra_dir), context).split(SEPARATOR)
                if len(parts) != len(sources):
                    raise limits.RenderLimit("a value holds the field separator")
        except Exception:  # noqa: BLE001, S110 - rendered again one by one, which reports it
            pass
        else:
            rendered = iter(parts)
            return ["" if text is None else next(rendered).strip() for text in texts]
    return [render_text(where, source, context, False, extra_dir) for where, source in fields]


def render_text(
    where: str,
    source: Any,
    context: dict[str, Any],
    html: bool = False,
    extra_dir: str | None = None,
) -> str:
    """Render one template string; TemplateProblem naming ``where`` on any error."""
    if source is None:
        return ""
    if not isinstance(source, str):
        source = str(source)
    try:
        return _stream(_compile(source, html, extra_dir), context).strip()
    except limits.RenderLimit as exc:
        raise TemplateProblem(str(exc), where=where, fix=exc.fix) from None
    except SecurityError as exc:
        raise TemplateProblem(f"{where}: unsafe construct refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateProblem(f"{where}: {exc.__class__.__name__}: {exc}") from None
    except RecursionError:
        raise TemplateProblem(
            "recursion too deep", where=where, fix="a macro must not call itself without end"
        ) from None
    except Exception as exc:  # a template is user code: any failure is its author's to fix
        message = f"{exc.__class__.__name__}: {str(exc)[:200]}"
        raise TemplateProblem(message, where=where, fix="correct the expression") from None
