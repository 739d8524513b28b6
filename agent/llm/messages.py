"""Conversions between langchain-core messages and the plain role/content dicts local runtimes take."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage


def to_role_dicts(messages: list[BaseMessage]) -> list[dict[str, str]]:
    roles = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
    out = []
    for message in messages:
        role = next((r for cls, r in roles.items() if isinstance(message, cls)), "user")
        content = message.content if isinstance(message.content, str) else str(message.content)
        out.append({"role": role, "content": content})
    return out
