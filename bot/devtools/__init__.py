"""Stand-ins that ship with the bot: a fake Slack, the Codegen emulator, the console."""
