"""The batching decision, as a pure function: send the next batch now, or wait a little.

A record goes out at once on an idle connection; records that arrive while a frame is being
written form the next batch, so batches grow with load and cost no latency at low load. Only
while the transport still holds bytes of earlier frames may a small batch wait to grow: a
frame sent now would just queue behind them, so waiting (at most `max_delay_ns` after the
oldest record's arrival) costs no latency and gives a bigger, better compressed frame.
"""
from __future__ import annotations


def linger_s(now_ns: int, transport_bytes: int, batching: bool, max_delay_ns: int,
             queued: int, limit: int, has_flush_priority: bool, oldest_ns: int | None) -> float:
    """Seconds to wait before popping the next batch; 0.0 = send now.

    `transport_bytes`: bytes still in the transport's buffer; `queued`: records in the outbox;
    `limit`: records a batch may hold; `has_flush_priority`: some queued record must never wait;
    `oldest_ns`: arrival time of the oldest queued record.
    """
    if transport_bytes == 0 or not batching or max_delay_ns <= 0 or queued >= limit \
            or has_flush_priority or oldest_ns is None:
        return 0.0
    return max(0.0, (oldest_ns + max_delay_ns - now_ns) / 1e9)
