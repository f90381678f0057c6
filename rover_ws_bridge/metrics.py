"""Where the latency statistics used to live; they are in rover_ws_bridge.telemetry now.

Kept only for the modules that still import from here (streaming/router.py, which builds the
DeliveryMetrics every send loop records into, and bench/compare.py): their maintainers move
them to telemetry/, and then this file goes.
"""
from .telemetry.delivery import DeliveryMetrics as Metrics
from .telemetry.regression import mann_whitney_greater

__all__ = ["Metrics", "mann_whitney_greater"]
