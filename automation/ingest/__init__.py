"""HTTP ingest: shop webhooks and native events in, canonical events stored, health, metrics."""
