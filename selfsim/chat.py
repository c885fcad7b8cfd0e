"""Chat messages: the list-of-{role, content} form every prompt in selfsim takes."""

from __future__ import annotations

Messages = list[dict[str, str]]
ROLES = ("system", "user", "assistant")
