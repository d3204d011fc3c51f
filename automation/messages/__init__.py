"""Messages: templates rendered in a limited sandbox, compliance decorations, link rewriting.

Modules, each with one job: ``lookup`` (find and load template files and sections),
``filters`` (vnd, vn_date, first_name_or), ``limits`` (loop, range, size and time
budget of one rendering), ``sandbox`` (the Jinja2 environment, rendering one string),
``render`` (one channel section -> :class:`~automation.messages.rendered.Rendered`),
``html_text`` (HTML to plain text), ``zns`` (Zalo parameter limits and template ids),
``rewrite`` (signed click URLs in place of links), ``compliance`` (Decree 91 label,
opt-out, e-mail footer), ``samples`` (sample data), ``validate`` (checks at apply time)
and ``errors`` (TemplateProblem, a DefinitionError).
"""
