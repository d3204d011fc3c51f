"""Import every module that registers process_event handlers, in the order they must run.

Order matters: facts first (orders, carts), then segment membership, then sequences,
which may react to the segment transitions recorded just before.
"""

from automation.contacts import orders  # noqa: F401  rollups, carts
from automation.segments import handlers as segment_handlers  # noqa: F401
from automation.sequences import handlers as sequence_handlers  # noqa: F401

# isort: split
from automation.analytics import handlers as analytics_handlers  # noqa: F401  after orders
