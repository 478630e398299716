"""Immutable records and value helpers shared by every layer; imports nothing of the bridge above
it."""
