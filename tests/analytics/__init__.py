"""Tests of automation.analytics and mactl report."""
