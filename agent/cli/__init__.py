"""The `modalgraph` command: one module per command group, and the terminal view of a turn."""
