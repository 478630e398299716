"""Configuration read at start-up: watches.yaml, settings, argument specs, credentials (no
network)."""
