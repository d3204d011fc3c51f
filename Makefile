# Developer and operator shortcuts. Uses .venv/bin/python when present, else `python`.
PYTHON ?= $(shell test -x .venv/bin/python && echo .venv/bin/python || echo python)
MACTL ?= $(PYTHON) -m admin_cli.main

.PHONY: install test lint typecheck demo run bench chaos

install:  ## editable install with the test tools
	$(PYTHON) -m pip install -e ".[test]"

test:  ## the whole suite (real PostgreSQL and Redis; CI=true fails when one is missing)
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .

typecheck:  ## strict on automation/ and channels/
	$(PYTHON) -m mypy automation channels

demo:  ## a simulated month of a Vietnamese shop through the shipped playbooks
	$(MACTL) demo

run:  ## everything in one process on the embedded default (SQLite + in-process broker)
	$(MACTL) run

bench:  ## every benchmark, each with its same-run baseline (PostgreSQL + Redis; wrk for ingest)
	command -v wrk >/dev/null || apt-get install -y wrk
	$(PYTHON) bench/ingest.py
	$(PYTHON) bench/import_contacts.py
	$(PYTHON) bench/pipeline.py
	$(PYTHON) bench/enroll.py
	$(PYTHON) bench/events.py
	$(PYTHON) bench/segments.py --contacts 300000 --events 1500000
	$(PYTHON) bench/report.py

chaos:  ## faults in one run: SIGKILL, Redis flush, PostgreSQL refusing, faulty providers (5,000 messages)
	$(PYTHON) bench/chaos.py --messages 5000
