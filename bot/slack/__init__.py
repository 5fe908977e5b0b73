"""Slack: the gateway every Web API call goes through, the status cards, Block Kit, text."""
