"""Find the JSON object in a model's answer, repairing only syntax, never content.

Models wrap JSON in code fences, put prose before or after it, write Python dicts (single
quotes, True/None), or leave trailing commas. `extract_json_object` finds the first object in
the text that parses, and says how it got it:

- "ok": an object parsed as it stands (surrounding prose and code fences are allowed);
- "repaired": it parsed only after syntax repairs (single quotes, trailing commas, Python
  literals, curly quotes, unquoted keys);
- "no_json": there is no "{" in the text at all;
- "invalid_json": something object-like is there but nothing parses, even repaired.

Nothing is ever guessed: a truncated object, a bare word used as a value or a missing field is
never completed; the caller validates fields and records the status.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

OK = "ok"
REPAIRED = "repaired"
NO_JSON = "no_json"
INVALID_JSON = "invalid_json"
STATUSES = (OK, REPAIRED, NO_JSON, INVALID_JSON)

MAX_CHARS = 200_000  # longer answers are cut: a judge's verdict is never that long

_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js|python)?[ \t]*\n?(.*?)```", re.S)
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def _is_apostrophe(text: str, i: int) -> bool:
    """A single quote between two letters (don't, it's) is not a string delimiter."""
    return 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()


def _balanced_objects(text: str) -> list[str]:
    """Substrings from a "{" to its matching "}", outermost first, in one linear pass.

    Inside braces, strings delimited by double or single quotes are skipped (braces in values
    do not count); outside braces, quotes are prose and ignored. An outermost "{" that is never
    closed yields the rest of the text, which then fails to parse: truncated answers are not
    completed.
    """
    found: list[tuple[int, int]] = []
    stack: list[int] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch == "{":
            stack.append(i)
        elif not stack:
            continue
        elif ch == "}":
            found.append((stack.pop(), i + 1))
        elif ch in "\"'" and not (ch == "'" and _is_apostrophe(text, i)):
            quote = ch
    if stack:
        found.append((stack[0], len(text)))
    return [text[a:b] for a, b in sorted(found)]


def _candidates(text: str) -> Iterator[str]:
    """Code-fenced blocks first (their objects), then objects anywhere in the text."""
    seen: set[str] = set()
    for block in _FENCE_RE.findall(text):
        for candidate in _balanced_objects(block):
            if candidate not in seen:
                seen.add(candidate)
                yield candidate
    for candidate in _balanced_objects(text):
        if candidate not in seen:
            seen.add(candidate)
            yield candidate


def _strict(candidate: str) -> dict[str, Any] | None:
    try:
        value = json.loads(candidate)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


_KEY_RE = re.compile(r"(?P<pre>[{,]\s*)(?P<key>[A-Za-z_][A-Za-z0-9_\-]*)(?P<post>\s*:)")
_TRAILING_COMMA_RE = re.compile(r",(\s*[}\]])")


def _outside_strings(text: str, transform) -> str:  # noqa: ANN001
    """Apply `transform` to the parts of `text` outside double- and single-quoted strings."""
    out: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            buf.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
                out.append("".join(buf))
                buf = []
            continue
        if ch in "\"'" and not (ch == "'" and _is_apostrophe(text, i)):
            out.append(transform("".join(buf)))
            buf = [ch]
            quote = ch
            continue
        buf.append(ch)
    out.append(transform("".join(buf)) if quote is None else "".join(buf))
    return "".join(out)


def _python_literals(part: str) -> str:
    part = re.sub(r"\btrue\b", "True", part)
    part = re.sub(r"\bfalse\b", "False", part)
    return re.sub(r"\bnull\b", "None", part)


def _jsonable(value: Any) -> Any:
    """Python literal -> JSON-like value; sets, bytes, complex numbers are not accepted."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("non-string key")
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"not a JSON value: {type(value).__name__}")


def _repaired(candidate: str) -> dict[str, Any] | None:
    """Syntax-only repairs, from least to most invasive; None when nothing parses."""
    text = candidate.translate(_CURLY)
    # 1. trailing commas, unquoted keys (outside strings only), then strict JSON.
    fixed = _outside_strings(text, lambda s: _KEY_RE.sub(r'\g<pre>"\g<key>"\g<post>', s))
    fixed = _outside_strings(fixed, lambda s: _TRAILING_COMMA_RE.sub(r"\1", s))
    value = _strict(fixed)
    if value is not None:
        return value
    # 2. Python dict syntax (single quotes, True/False/None): ast.literal_eval evaluates
    #    literals only, never code.
    python = _outside_strings(fixed, _python_literals)
    try:
        value = ast.literal_eval(python)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    try:
        value = _jsonable(value)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def extract_json_object(text: str | None) -> tuple[dict[str, Any] | None, str]:
    """(the first JSON object in `text`, status); see the module doc for the statuses."""
    if not text or "{" not in text:
        return None, NO_JSON
    text = text[:MAX_CHARS]
    candidates = list(_candidates(text))
    for candidate in candidates:
        value = _strict(candidate)
        if value is not None:
            return value, OK
        value = _repaired(candidate)
        if value is not None:
            return value, REPAIRED
    return None, INVALID_JSON
