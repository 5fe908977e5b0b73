"""Intake: what people ask in Slack becomes a committed, prepared queue entry."""
