"""Tests of the definition language: YAML loader, durations, property filters."""
