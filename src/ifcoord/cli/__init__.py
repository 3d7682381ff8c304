"""The interfaces: the command line and the MCP server (requests in, exit codes and messages out)."""
