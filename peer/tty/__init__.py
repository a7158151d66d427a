"""The terminal: one stdin reader, prompts, progress bars and typed commands.

Also untrusted text made safe to show.
"""
