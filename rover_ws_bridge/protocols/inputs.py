"""Checks of client input shared by the three protocols (native, Foxglove, rosbridge), and
the limits they enforce. Each check is linear in the input and refuses what is too long
before doing anything else with it; errors quote the client's value cut short, so that an
error never echoes megabytes back.
"""
from __future__ import annotations

import json
import math
from typing import Any

from ..wire.encoding import to_json_text
from .base import SendText

MAX_ID_CHARS = 256  # request ids: echoed in every answer
MAX_NAME_CHARS = 1024  # topic, service, node, action and parameter names
MAX_TIMEOUT_S = 300.0  # the longest service call timeout a client may ask for
# A single answer larger than this is refused (`too_large`) rather than queued: the control
# queue holds at most 4 MiB per connection, and one answer must not close the connection.
MAX_ANSWER_CHARS = 1024 * 1024


class RequestError(Exception):
    """A client request that cannot be carried out: `code` (PROTOCOL.md's error codes) and a
    message for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def json_text(message: dict) -> SendText:
    """A JSON text frame. ROS values in answers (service responses, parameters) may hold
    bytes (uint8[] fields, as base64, like data records) and NaN or infinities (as null):
    JSON has neither."""
    return SendText(to_json_text(message))


def reject_constant(name: str) -> Any:
    """json.loads' parse_constant: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not JSON (NaN and infinities are written as null)")


def finite_float(text: str) -> float:
    """json.loads' parse_float: 1e400 is JSON, but no double holds it."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:50]} does not fit a double")
    return value


def parse_json_object(text: str) -> dict:
    """A client's control message: strict JSON (no NaN or Infinity, no number past a double)
    holding an object; anything else is a RequestError (bad_json or bad_request)."""
    try:
        message = json.loads(text, parse_constant=reject_constant, parse_float=finite_float)
    except (ValueError, RecursionError) as exc:
        raise RequestError("bad_json", f"message is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(message, dict):
        raise RequestError("bad_request", "message must be a JSON object")
    return message


def check_name(value: Any, what: str) -> str:
    """A non-empty string of at most MAX_NAME_CHARS (its ROS syntax is the core's check)."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise RequestError("bad_request", f"'{what}' must be a non-empty string of at most "
                           f"{MAX_NAME_CHARS} characters, not {short(value)}")
    return value


def short(value: Any, limit: int = 100) -> str:
    """A client's value quoted in an error, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def is_short_scalar(value: Any) -> bool:
    """Whether a request id is one we echo: a number, or a string of MAX_ID_CHARS at most."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS
