"""Routing: which actions an assessment triggers, from the ordered ``routing_rules``.

Matching mode: **all matches**. Every rule whose conditions hold adds its actions, in rule order, until
a matching rule with ``stop: true``; an (action, target) pair named by several rules is done once, on
behalf of the first. All-matches lets independent concerns stay independent rules ("every SR to the
archive", "failures to QC review", "page on fail") instead of repeating shared actions in every branch
of a first-match chain; ``stop`` gives first-match where a site wants exclusivity.

In report-only mode (setting ``report_only``) a rule that matches on the flag does not fire, nor
does its ``stop``: the verdict is computed, shown and sent by the rules that do not look at it, and
nothing is routed because of it while a site watches how the flags would have fallen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from qcgate.core.delivery_settings import RoutingRule, RuleMatch
from qcgate.core.delivery_states import DeliveryAction
from qcgate.core.outcomes import Flag


@dataclass(frozen=True)
class SeriesFacts:
    """What rules can look at: the assessment's flag and metric values, and series attributes."""

    flag: Flag | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    modality: str = ""
    station_name: str = ""
    series_description: str = ""
    calling_ae: str = ""


@dataclass(frozen=True)
class PlannedAction:
    action: DeliveryAction
    target: str
    rule: str


def matches(match: RuleMatch, facts: SeriesFacts) -> bool:
    """True when every condition of ``match`` holds for ``facts``."""
    if match.flag is not None and facts.flag not in match.flag:
        return False
    if match.modality is not None and facts.modality not in match.modality:
        return False
    if match.calling_ae is not None and facts.calling_ae not in match.calling_ae:
        return False
    if match.station_name is not None and not match.station_name.search(facts.station_name):
        return False
    if match.series_description is not None and not match.series_description.search(facts.series_description):
        return False
    return all(condition.holds(facts.metrics.get(name)) for name, condition in match.metrics.items())


def _actions(rule: RoutingRule) -> Iterable[tuple[DeliveryAction, str]]:
    for action, targets in (
        (DeliveryAction.SEND_SR, rule.send_sr),
        (DeliveryAction.SEND_KOS, rule.send_kos),
        (DeliveryAction.FORWARD, rule.forward),
        (DeliveryAction.WEBHOOK, rule.webhooks),
    ):
        for target in targets:
            yield action, target


def route(
    rules: Sequence[RoutingRule], facts: SeriesFacts, *, report_only: bool = False
) -> list[PlannedAction]:
    """The actions of every matching rule, in order, each (action, target) once; with
    ``report_only`` the rules that match on the flag are passed over."""
    planned: dict[tuple[DeliveryAction, str], PlannedAction] = {}
    for rule in rules:
        if report_only and rule.match.flag is not None:
            continue
        if not matches(rule.match, facts):
            continue
        for action, target in _actions(rule):
            planned.setdefault((action, target), PlannedAction(action, target, rule.name))
        if rule.stop:
            break
    return list(planned.values())
