"""Properties that must hold for every input (hypothesis), where examples alone would miss the odd one:
UID and spool-path validation, routing, and the codestream header reader."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcgate.core.delivery_settings import RoutingRule, RuleMatch
from qcgate.core.delivery_states import DeliveryAction
from qcgate.core.errors import InvalidUid
from qcgate.core.outcomes import Flag
from qcgate.delivery.rules import SeriesFacts, matches, route
from qcgate.receiver.codestreams import frame_geometry, rle_segments
from qcgate.store.spool import instance_path, validate_uid

UID_GRAMMAR = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
SPOOL = Path("/spool")
uid_like = st.text(alphabet="0123456789.\x00 /\\abc-", max_size=70) | st.text(max_size=70)
component = st.integers(min_value=0, max_value=10**12).map(str)
valid_uid = st.lists(component, min_size=2, max_size=8).map(".".join).filter(lambda uid: len(uid) <= 64)


@given(uid_like)
def test_a_uid_is_accepted_exactly_when_it_follows_the_grammar(candidate: str) -> None:
    stripped = candidate.rstrip("\x00 ")
    valid = 0 < len(stripped) <= 64 and UID_GRAMMAR.fullmatch(stripped) is not None
    try:
        assert validate_uid(candidate, "SOPInstanceUID") == stripped
        assert valid
    except InvalidUid:
        assert not valid


@given(uid_like, uid_like, uid_like)
def test_no_spool_path_leaves_the_spool(study: str, series: str, sop: str) -> None:
    try:
        path = instance_path(SPOOL, study, series, sop)
    except InvalidUid:
        return
    assert path.parent.parent.parent == SPOOL
    assert ".." not in path.parts
    assert path.name.endswith(".dcm")


@given(valid_uid, valid_uid, valid_uid)
def test_every_valid_uid_triple_has_its_own_path(study: str, series: str, sop: str) -> None:
    assert instance_path(SPOOL, study, series, sop) == SPOOL / study / series / f"{sop}.dcm"


flags = st.sampled_from([None, *Flag])
names = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,6}", fullmatch=True)
facts = st.builds(
    SeriesFacts,
    flag=flags,
    metrics=st.dictionaries(
        st.sampled_from(["snr", "msm", "quality"]), st.floats(allow_nan=True), max_size=3
    ),
    modality=st.sampled_from(["MR", "CT", ""]),
    station_name=st.text(max_size=8),
    series_description=st.text(max_size=8),
    calling_ae=st.sampled_from(["MR1", "MR2", ""]),
)
rules = st.lists(
    st.builds(
        RoutingRule,
        name=names,
        match=st.builds(RuleMatch, flag=st.none() | st.lists(st.sampled_from(list(Flag)), min_size=1)),
        send_sr=st.lists(names, max_size=2),
        forward=st.lists(names, max_size=2),
        webhooks=st.lists(names, max_size=2),
        stop=st.booleans(),
    ),
    max_size=5,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(rules, facts)
def test_routing_does_each_action_once_for_the_matching_rules_up_to_a_stop(
    rule_list: list[RoutingRule], series: SeriesFacts
) -> None:
    planned = route(rule_list, series)
    keys = [(item.action, item.target) for item in planned]
    assert len(keys) == len(set(keys)), "each (action, target) once"
    evaluated = []
    for rule in rule_list:
        if matches(rule.match, series):
            evaluated.append(rule)
            if rule.stop:
                break
    assert {item.rule for item in planned} <= {rule.name for rule in evaluated}
    expected = {(a, t) for rule in evaluated for a, t in _targets(rule)}
    assert set(keys) == expected
    assert route(rule_list, series) == planned, "deterministic"


def _targets(rule: RoutingRule) -> list[tuple[DeliveryAction, str]]:
    return [
        *((DeliveryAction.SEND_SR, target) for target in rule.send_sr),
        *((DeliveryAction.SEND_KOS, target) for target in rule.send_kos),
        *((DeliveryAction.FORWARD, target) for target in rule.forward),
        *((DeliveryAction.WEBHOOK, target) for target in rule.webhooks),
    ]


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_the_codestream_reader_never_raises_and_never_invents_a_frame(data: bytes) -> None:
    geometry = frame_geometry(data)
    if geometry is not None:
        assert data[:2] in (b"\xff\xd8", b"\xff\x4f", b"\x00\x00")
    segments = rle_segments(data)
    assert (segments is None) == (len(data) < 64)
