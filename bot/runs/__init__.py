"""Runs: the dispatcher sends queued requests, the tracker follows runs to their end."""
