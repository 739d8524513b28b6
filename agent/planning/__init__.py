"""Planning a turn: the plan schema, the planner LLM call, its prompts and the plan scores."""
