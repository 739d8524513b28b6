"""Tools of other MCP servers, offered to the planner beside the built-in ones."""
