"""The MCP server (`modalgraph mcp`): the tool registry offered to other apps over stdio or HTTP."""
