"""Analytics: goals, attribution, holdouts, A/B verdicts and the report's data.

- definition: the ``goal:``, ``attribution:`` and ``holdout:`` keys of a sequence
- holdout: the stable per-contact holdout draw
- conversions: the process_event handler crediting orders to messages and goals
- stats: Wilson / Newcombe intervals, two-proportion z-test, sample sizes
- report: set-based report data; render: the HTML page
"""
