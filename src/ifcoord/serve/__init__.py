"""Warm commands: a running `ifcoord poll` (or `ifcoord serve`) runs other commands for the same user.
"""
