"""The process `mactl worker` becomes: JSON logs, then the Dramatiq CLI without its own.

``python -m automation.runtime.launch <dramatiq arguments>``. Dramatiq's plain-text
logging is turned off (``--skip-logging``); every process (the main one and the forked
workers, whose stderr Dramatiq pipes back) logs JSON lines through
automation.core.logging. On SIGTERM to the main process Dramatiq stops consuming,
lets the messages in flight finish (up to ``--worker-shutdown-timeout``) and returns
the prefetched ones to Redis.
"""

from __future__ import annotations

import sys

from automation.core.config import get_settings
from automation.core.logging import configure_logging


def main(argv: list[str]) -> int:
    """Configure JSON logging and run the Dramatiq CLI with ``argv``; its exit code."""
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    configure_logging(get_settings().log_level)
    args = make_argument_parser().parse_args(["--skip-logging", *argv])  # type: ignore[no-untyped-call]
    return int(dramatiq_main(args) or 0)  # type: ignore[no-untyped-call]


if __name__ == "__main__":  # pragma: no cover - the worker process entry point
    sys.exit(main(sys.argv[1:]))
