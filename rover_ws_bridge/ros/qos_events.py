"""rclpy's QoS-event callback classes across distributions, and "no default handlers".

rclpy gives every publisher and subscription default QoS-event handlers (incompatible QoS,
type mismatch). Each is a waitable the executor re-scans on every wake-up, i.e. for every
message: measurable CPU at hundreds of messages a second. Our entities do without them.
"""
from __future__ import annotations

try:  # Jazzy and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import (  # type: ignore[no-redef]
        PublisherEventCallbacks,
        SubscriptionEventCallbacks,
    )


def no_publisher_events() -> PublisherEventCallbacks:
    return PublisherEventCallbacks(use_default_callbacks=False)


def no_subscription_events() -> SubscriptionEventCallbacks:
    return SubscriptionEventCallbacks(use_default_callbacks=False)
