"""Tracking tests use the shared feedback fixtures."""

from feedback_fixtures import *  # noqa: F403
