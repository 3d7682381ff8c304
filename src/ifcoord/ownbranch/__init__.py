"""Own-branch mode in one place: session branches, settling, the arbiter."""
