"""The one definition language under segments and sequences.

- yamlload: the line-aware YAML loader (file:line errors; size, alias and depth limits)
- durations: the one duration grammar ("30s", "90m", "1h30m", "7d", "2w"; at most 10 years)
- filters: the one property filter ``{property: total, gte: 1000000}`` and its operators

Every error here is an ``automation.core.errors.DefinitionError``.
"""
