"""How deep a config value may nest: 32 levels, DynamoDB's own limit for an item's attributes.

Untrusted input: config files and items are written by operators and anyone who can write the
bucket or the table, and a value nested far deeper than any config needs (``[[[[...`` 200,000
levels in one file) makes Python's JSON parser, boto3's deserializer and the merge raise
``RecursionError``, which nothing expects. So nesting is measured without recursion, before
anything recursive sees the value, and a deeper value is a ConfigError naming its source and,
where the value could be read, the key where it goes too deep.
"""

from __future__ import annotations

import re
from typing import Any

from skynet_tasks.config.paths import ConfigError

MAX_NESTING = 32

# A JSON string (skipped whole, so brackets inside it do not count) or a bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def check_json_text(data: bytes, source: str) -> None:
    """ConfigError if the JSON text ``data`` nests deeper than MAX_NESTING (measured before it is parsed)."""
    depth = 0
    for token in _TOKENS.finditer(data):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > MAX_NESTING:
                raise ConfigError(f"{source}: nested deeper than {MAX_NESTING} levels "
                                  f"(at byte {token.start()}); flatten it")
        elif char in (b"]", b"}"):
            depth -= 1


def check_value(value: Any, source: str) -> None:
    """ConfigError naming the key where the parsed JSON ``value`` nests deeper than MAX_NESTING."""
    _walk(value, source, lambda v: v.items() if isinstance(v, dict) else enumerate(v)
          if isinstance(v, list) else None)


def check_attribute(attribute: Any, source: str) -> None:
    """ConfigError naming the key where the DynamoDB attribute value ``attribute`` (``{"M": ...}``)
    nests deeper than MAX_NESTING."""
    def children(v: Any) -> Any:
        if isinstance(v, dict) and len(v) == 1:
            ((kind, inner),) = v.items()
            if kind == "M" and isinstance(inner, dict):
                return inner.items()
            if kind == "L" and isinstance(inner, list):
                return enumerate(inner)
        return None

    _walk(attribute, source, children)


def _walk(root: Any, source: str, children: Any) -> None:
    stack: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while stack:
        value, key = stack.pop()
        inner = children(value)
        if inner is None:
            continue
        if len(key) >= MAX_NESTING:
            shown = ".".join(key[:4]) + (".…" if len(key) > 4 else "")
            raise ConfigError(f"{source}: key {shown} nests deeper than {MAX_NESTING} levels; flatten it")
        stack.extend((child, (*key, str(name))) for name, child in inner)
