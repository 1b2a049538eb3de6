"""QoS for the node's topics, and what to say when a peer's QoS does not match."""

from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy

try:  # Iron and newer
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

__all__ = [
    "PublisherEventCallbacks",
    "SubscriptionEventCallbacks",
    "profile",
    "input_mismatch",
    "output_mismatch",
    "resolved",
]


def profile(reliability: str, depth: int) -> QoSProfile:
    """KEEP_LAST ``depth``, reliable or best effort (the node's parameters spell them reliable/best_effort)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
    )


def _policy(info) -> str:
    try:
        return QoSPolicyKind(info.last_policy_kind).name.lower()
    except (ValueError, AttributeError):
        return "QoS"


def input_mismatch(topic: str, info, reliability: str, depth: int) -> str:
    return (
        f"QoS MISMATCH on {topic}: a publisher's {_policy(info)} policy is incompatible with this subscription "
        f"({reliability}, depth {depth}), so NO images arrive; set qos_reliability to match the camera driver"
    )


def output_mismatch(info, reliability: str) -> str:
    return (
        f"QoS MISMATCH on an output topic: a subscriber requests a {_policy(info)} policy this node does not "
        f"offer ({reliability}), so it receives nothing; set output_qos_reliability to reliable or change the "
        "subscriber's QoS"
    )


def resolved(node, topic: str) -> str:
    """The fully qualified name of ``topic`` for ``node`` (remappings and namespace applied)."""
    try:
        return node.resolve_topic_name(topic)
    except AttributeError:  # Humble has no resolve_topic_name
        return topic
