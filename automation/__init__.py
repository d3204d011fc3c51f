"""Omnichannel marketing automation: ingest, segments, sequences, delivery."""
