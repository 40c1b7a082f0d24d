"""A small NetworkPolicy evaluator (ingress only, what our policies use): is a connection from a
pod/namespace to a pod's port allowed? Semantics as in the Kubernetes API reference: a pod no
Ingress policy selects accepts everything; otherwise some rule of some selecting policy must
match the peer and the port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Labels = dict[str, str]


@dataclass(frozen=True)
class Peer:
    namespace: str
    namespace_labels: Labels
    labels: Labels = field(default_factory=dict)  # empty for traffic from outside the cluster
    in_cluster: bool = True


def selector_matches(selector: dict[str, Any] | None, labels: Labels) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer_rule: dict[str, Any], policy_ns: str, peer: Peer) -> bool:
    if "ipBlock" in peer_rule:
        return not peer.in_cluster  # our policies use none; outside traffic only
    pod_sel, ns_sel = peer_rule.get("podSelector"), peer_rule.get("namespaceSelector")
    if not peer.in_cluster:
        return False
    if ns_sel is None and peer.namespace != policy_ns:
        return False
    if ns_sel is not None and not selector_matches(ns_sel, peer.namespace_labels):
        return False
    return pod_sel is None or selector_matches(pod_sel, peer.labels)


def _port_matches(rule_ports: list[dict[str, Any]] | None, port: int,
                  named_ports: dict[str, int]) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        wanted = p.get("port")
        if wanted is None or wanted == port or named_ports.get(str(wanted)) == port:
            return True
    return False


def allowed(policies: list[dict[str, Any]], dst_namespace: str, dst_labels: Labels,
            dst_named_ports: dict[str, int], port: int, src: Peer) -> bool:
    selecting = [
        p for p in policies
        if p["metadata"].get("namespace") == dst_namespace
        and selector_matches(p["spec"]["podSelector"], dst_labels)
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from")
            peer_ok = not peers or any(
                _peer_matches(r, dst_namespace, src) for r in peers)
            if peer_ok and _port_matches(rule.get("ports"), port, dst_named_ports):
                return True
    return False
