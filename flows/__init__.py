"""Flows: composition of the stage tasks only (no logic of their own)."""
