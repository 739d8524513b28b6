"""LangGraph graphs that wire the planner, the tools and memory together."""
