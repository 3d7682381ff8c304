"""Agents in the loop: client integrations (Claude Code hooks, an MCP server) over `ifcoord now`."""
