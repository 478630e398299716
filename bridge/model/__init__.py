"""Immutable records and value helpers every layer shares; imports nothing of the bridge."""
