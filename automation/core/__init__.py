"""core: config, clock, db, models, events, vocabulary, errors, outbox, processing."""

# Every table is registered on Base.metadata whenever any core module is imported.
from automation.core import (  # noqa: F401, E402
    models_analytics,
    models_consent,
    models_inbox,
    models_privacy,
    models_sms,
)
