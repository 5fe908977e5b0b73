"""The bot's own tables and the stores over them (one facade: store.Store)."""
