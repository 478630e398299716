"""Start-up configuration, no network: watches.yaml, settings, argument specs, credentials."""
