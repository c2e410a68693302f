"""The offline WeCom: its HTTP API, a seeded corp, and simulated people who trigger callbacks.

Start one with `siyu.wecom.emulator.server.start_emulator(...)`; see docs/emulator.md.
"""
