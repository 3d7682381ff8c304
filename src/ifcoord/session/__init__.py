"""A clone working a branch: the workspace, the poll loop, stopping, init."""
