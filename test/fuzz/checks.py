"""What every fuzz harness checks of an answer, and the known bugs it counts instead of
crashing on (each has an xfail test in test/test_fuzz_protocol.py; remove it here once fixed).

Known findings are recorded, first example only, in the JSON file named by $FUZZ_KNOWN_FILE.
"""
from __future__ import annotations

import json
import math
import os

# docs/PROTOCOL.md: the status codes and the two-way error codes.
STATUS_CODES = {
    "bad_json", "bad_request", "unknown_op", "unknown_topic", "unknown_encoding",
    "unknown_compression", "not_subscribed", "backpressure",
    "not_allowed", "not_advertised", "unknown_type", "bad_message", "bad_args",
    "no_such_service", "no_such_node", "timeout", "too_many_calls", "too_many_topics",
    "too_large", "busy", "failed",
}
STATUS_LEVELS = {"error", "warning", "info"}
# An answer may exceed its request by this much: fixed texts, an echoed id of 256 characters
# (up to 6 JSON characters each), names of at most 1024 characters quoted in errors.
ANSWER_SLACK = 16 * 1024

_known: dict[str, str] = {}


def known(name: str, example) -> None:
    """A known bug was hit: keep its first example, carry on fuzzing."""
    if name in _known:
        return
    _known[name] = repr(example)[:500]
    path = os.environ.get("FUZZ_KNOWN_FILE")
    if path:
        with open(path, "w") as f:
            json.dump(_known, f)


def _reject_constant(name):
    raise ValueError(f"{name} in the bridge's output")


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a double")
    return value


def strict_json(text: str):
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)


def check_text_answer(text: str) -> dict:
    message = strict_json(text)
    assert isinstance(message, dict) and isinstance(message.get("op"), str), message
    if message["op"] == "status":
        assert message["code"] in STATUS_CODES, message
        assert message["level"] in STATUS_LEVELS, message
        assert isinstance(message["message"], str), message
    return message
