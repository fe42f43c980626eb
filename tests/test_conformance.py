"""docs/conformance.md stays true: its tables against what qcgate negotiates, answers and reads.

The statement's checked tables follow an HTML comment ``<!-- table: name -->``. In process: the
receiver's supported presentation contexts equal the SOP class and transfer syntax tables (both
ways, in the order of preference), the status table equals the ``InstanceRejected`` leaves, and every
setting named exists with the default the statement gives. Over real associations on localhost: the
receiver accepts and rejects a sample of listed and unlisted contexts as the statement says, with
the implementation identity and PDU size it gives, rejects associations with the stated result,
source and reason, and the delivery AE proposes the contexts of the SCU table.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydantic import BaseModel
from pydicom.data import get_testdata_file
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from qcgate.assessment.pipeline import SeriesAssessment
from qcgate.core.delivery_settings import Destination, RoutingRule, Tls
from qcgate.core.errors import InstanceRejected
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import ListenerTls, Settings, get_settings
from qcgate.delivery import dicom_send
from qcgate.delivery.publish import write_report
from qcgate.harness.peers import free_port
from qcgate.metrics.base import MetricResult
from qcgate.receiver.scp import STATUS_PROCESSING_FAILURE, create_ae, start_receiver
from qcgate.sr import build_quality_issue_selection, build_quality_report
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.synthetic.dicom_series import mr_series_datasets

STATEMENT = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"
JPEG_XL_LOSSLESS = "1.2.840.10008.1.2.4.110"  # DICOM 2024 (Sup 232); pydicom 3.0 has no name for it
PARAMETRIC_MAP_STORAGE = "1.2.840.10008.5.1.4.1.1.30"
ABSTRACT_SYNTAX_NOT_SUPPORTED, TRANSFER_SYNTAX_NOT_SUPPORTED = 0x03, 0x04


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: list[dict[str, str]]

    def column(self, name: str) -> list[str]:
        return [row[name] for row in self.rows]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def statement_tables(text: str) -> dict[str, Table]:
    """Every table that follows a ``<!-- table: name -->`` comment, by name."""
    tables: dict[str, Table] = {}
    lines = text.splitlines()
    for number, line in enumerate(lines):
        found = re.fullmatch(r"<!-- table: ([a-z0-9-]+) -->", line.strip())
        if not found:
            continue
        body = []
        for following in lines[number + 1 :]:
            if not following.startswith("|"):
                break
            body.append(following)
        columns = tuple(_cells(body[0]))
        assert set(body[1].replace("|", "").strip()) <= {"-", ":", " "}, f"{found[1]}: no header rule"
        rows = [dict(zip(columns, _cells(row), strict=True)) for row in body[2:]]
        assert found[1] not in tables, f"two tables named {found[1]}"
        tables[found[1]] = Table(columns, rows)
    return tables


def code(cell: str) -> str:
    """The first backticked value of a cell, else the cell."""
    quoted = re.search(r"`([^`]*)`", cell)
    return quoted[1] if quoted else cell


def leading_number(cell: str) -> int:
    found = re.match(r"\d+", cell)
    assert found, f"{cell!r} does not start with a number"
    return int(found[0])


@pytest.fixture(scope="module")
def tables() -> dict[str, Table]:
    found = statement_tables(STATEMENT.read_text(encoding="utf-8"))
    expected = {
        "scp-sop-classes": ("SOP Class", "SOP Class UID", "Role", "Transfer Syntaxes", "Instances"),
        "transfer-syntaxes": ("Set", "Preference", "Transfer Syntax", "Transfer Syntax UID"),
        "association-policy": ("Parameter", "Default", "Setting", "Notes"),
        "association-rejections": ("Condition", "Result", "Source", "Reason"),
        "store-statuses": (
            "Status", "Category (PS3.4 B.2.3, PS3.7 C)", "Reason", "Error", "Meaning", "Resend",
        ),
        "scu-contexts": (
            "SOP Class", "SOP Class UID", "Transfer Syntax", "Transfer Syntax UID", "Role", "When",
        ),
        "configuration": ("Setting", "Default", "Effect"),
    }  # fmt: skip
    assert {name: table.columns for name, table in found.items()} == expected
    return found


def transfer_syntax_sets(tables: dict[str, Table]) -> dict[str, list[str]]:
    """Set name -> transfer syntax UIDs in the receiver's order of preference."""
    sets: dict[str, list[tuple[int, str]]] = {}
    for row in tables["transfer-syntaxes"].rows:
        uid = UID(code(row["Transfer Syntax UID"]))
        assert uid.is_transfer_syntax, row
        assert uid.name == row["Transfer Syntax"], row
        sets.setdefault(row["Set"], []).append((int(row["Preference"]), uid))
    ordered = {}
    for name, ranked in sets.items():
        assert [rank for rank, _ in sorted(ranked)] == list(range(1, len(ranked) + 1)), name
        ordered[name] = [uid for _, uid in sorted(ranked)]
    return ordered


def documented_scp_contexts(tables: dict[str, Table]) -> dict[str, list[str]]:
    """SOP Class UID -> the transfer syntaxes the statement says the receiver accepts, in order."""
    sets = transfer_syntax_sets(tables)
    contexts: dict[str, list[str]] = {}
    for row in tables["scp-sop-classes"].rows:
        uid = code(row["SOP Class UID"])
        assert uid not in contexts, f"{uid} listed twice"
        assert row["Role"] == "SCP"
        contexts[uid] = sets[row["Transfer Syntaxes"]]
    return contexts


def test_the_scp_tables_are_the_receivers_contexts(tables: dict[str, Table], tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path)
    supported = {
        str(context.abstract_syntax): [str(syntax) for syntax in context.transfer_syntax]
        for context in create_ae(settings).supported_contexts
    }
    assert supported == documented_scp_contexts(tables)
    for context in create_ae(settings).supported_contexts:  # no SCP/SCU role selection reply
        assert (context.scu_role, context.scp_role) == (None, None)
    rows = tables["scp-sop-classes"].rows
    for row in rows:  # the names are the standard's (pydicom's dictionary), not free text
        assert row["SOP Class"] == UID(code(row["SOP Class UID"])).name
    scored = {code(row["SOP Class UID"]) for row in rows if row["Instances"] == "scored"}
    assert scored == settings.scored_sop_classes
    assert {row["Instances"] for row in rows} == {"scored", "refused or kept", "n/a"}


def test_the_policy_table_is_the_receivers_ae(tables: dict[str, Table], tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path, allowed_calling_aes=["MR1", "MR2"])
    ae = create_ae(settings)
    assert ae.ae_title == settings.ae_title == _policy(tables, "Called AE title")
    assert ae.require_called_aet is True
    assert ae.require_calling_aet == ["MR1", "MR2"]
    assert ae.maximum_associations == settings.max_associations
    assert ae.acse_timeout == settings.association_request_timeout_s  # the ARTIM timer
    assert ae.maximum_pdu_size == int(_policy(tables, "Maximum PDU length received, bytes"))
    assert ae.network_timeout == float(_policy(tables, "Network idle timeout, s"))
    assert ae.implementation_class_uid == _policy(tables, "Implementation Class UID")
    assert ae.implementation_version_name == _policy(tables, "Implementation Version Name")


def _leaves(cls: type[InstanceRejected]) -> list[type[InstanceRejected]]:
    children = cls.__subclasses__()
    return [leaf for child in children for leaf in _leaves(child)] if children else [cls]


def test_the_status_table_is_the_error_hierarchy(tables: dict[str, Table]) -> None:
    rows = tables["store-statuses"].rows
    statuses = [code(row["Status"]) for row in rows]
    assert len(statuses) == len(set(statuses)), "a status listed twice"
    documented = {(code(row["Status"]), code(row["Reason"]), code(row["Error"])) for row in rows}
    leaves = {(f"0x{leaf.status:04X}", leaf.reason, leaf.__name__) for leaf in _leaves(InstanceRejected)}
    assert len(leaves) == len(_leaves(InstanceRejected)) >= 13
    without_error = {entry for entry in documented if entry[2] == "-"}
    assert documented - without_error == leaves
    assert {status for status, _, _ in without_error} == {"0x0000", f"0x{STATUS_PROCESSING_FAILURE:04X}"}


def _default(field_name: str) -> str:
    """A setting's default as the statement writes it."""
    field = Settings.model_fields[field_name]
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict) and not value:
        return "empty"
    return str(value)


def test_every_setting_named_exists_with_its_default(tables: dict[str, Table]) -> None:
    checked = 0
    for table in tables.values():
        if "Setting" not in table.columns:
            continue
        for row in table.rows:
            if row["Setting"] == "-":
                continue
            name = code(row["Setting"])
            assert name in Settings.model_fields, f"{name} is not a setting"
            assert code(row["Default"]) == _default(name), name
            checked += 1
    assert checked >= 30


def test_every_snake_case_name_in_the_statement_is_known(tables: dict[str, Table]) -> None:
    """A backticked snake_case word is a setting, a field of one, a metric or a rejection reason:
    a renamed setting cannot linger in the prose."""
    models: list[type[BaseModel]] = [Settings, Destination, Tls, ListenerTls, RoutingRule]
    known = {name for model in models for name in model.model_fields}
    known |= {code(row["Reason"]) for row in tables["store-statuses"].rows}
    text = STATEMENT.read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`", text))
    unknown = {name for name in named - known if not name.startswith("qcgate_")}
    assert not unknown
    assert "allowed_calling_aes" in named


# --- over real associations ------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Callable[..., tuple[Settings, Any]]]:
    """Start in-process receivers on free ports (one database); stopped after the test."""
    servers: list[Any] = []
    data_dir = tmp_path / "data"

    def start(**overrides: Any) -> tuple[Settings, Any]:
        settings = get_settings(
            data_dir=data_dir, min_free_disk_mb=0, dicom_host="127.0.0.1", dicom_port=free_port(), **overrides
        )
        if not servers:
            upgrade_database(settings.effective_database_url)
        sessions = session_factory(create_database_engine(settings.effective_database_url))
        servers.append(start_receiver(settings, sessions))
        return settings, servers[-1]

    yield start
    for server in servers:
        server.shutdown()


def _policy(tables: dict[str, Table], parameter: str) -> str:
    (row,) = [row for row in tables["association-policy"].rows if row["Parameter"] == parameter]
    return code(row["Default"])


@pytest.mark.peers
def test_the_receiver_negotiates_as_stated(
    tables: dict[str, Table], receiver: Callable[..., tuple[Settings, Any]]
) -> None:
    settings, _ = receiver()
    documented = documented_scp_contexts(tables)
    listed = sorted(documented)
    sample = [*listed[::12], *sorted(settings.scored_sop_classes)]
    unlisted_storage = [
        str(context.abstract_syntax)
        for context in AllStoragePresentationContexts
        if str(context.abstract_syntax) not in documented
    ]
    assert PARAMETRIC_MAP_STORAGE in unlisted_storage
    proposals: list[tuple[str, list[str]]] = []
    for uid in sample:  # a syntax nobody accepts, then the set's least, second and most preferred
        proposals.append((uid, [HTJ2KLossless, documented[uid][-1], documented[uid][1], documented[uid][0]]))
    mr = sorted(settings.scored_sop_classes)[0]
    proposals += [
        (mr, [HTJ2KLossless]),
        (mr, [JPEG_XL_LOSSLESS]),
        (ModalityWorklistInformationFind, [ImplicitVRLittleEndian]),
        (StudyRootQueryRetrieveInformationModelFind, [ImplicitVRLittleEndian]),
        (PARAMETRIC_MAP_STORAGE, [ExplicitVRLittleEndian]),
        (unlisted_storage[0], [ExplicitVRLittleEndian]),
    ]
    assert len(proposals) <= 128
    requestor = AE(ae_title="CONFORMANCE")
    for abstract_syntax, syntaxes in proposals:
        requestor.add_requested_context(abstract_syntax, [str(syntax) for syntax in syntaxes])
    assoc = requestor.associate("127.0.0.1", settings.dicom_port, ae_title=settings.ae_title)
    assert assoc.is_established
    try:
        outcome = {
            context.context_id: (0x00, context.transfer_syntax[0]) for context in assoc.accepted_contexts
        }
        outcome |= {context.context_id: (context.result, None) for context in assoc.rejected_contexts}
        for number, (abstract_syntax, syntaxes) in enumerate(proposals):
            context_id = 2 * number + 1
            if abstract_syntax not in documented:
                expected: tuple[int, str | None] = (ABSTRACT_SYNTAX_NOT_SUPPORTED, None)
            else:
                chosen = [syntax for syntax in documented[abstract_syntax] if syntax in syntaxes]
                expected = (0x00, chosen[0]) if chosen else (TRANSFER_SYNTAX_NOT_SUPPORTED, None)
            assert outcome[context_id] == expected, (abstract_syntax, syntaxes)
        acceptor = assoc.acceptor
        assert acceptor.implementation_class_uid == _policy(tables, "Implementation Class UID")
        assert acceptor.implementation_version_name == _policy(tables, "Implementation Version Name")
        assert acceptor.maximum_length == int(_policy(tables, "Maximum PDU length received, bytes"))
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def _wait_until_idle(server: Any) -> None:
    deadline = time.monotonic() + 10
    while server.ae.active_associations:
        assert time.monotonic() < deadline, "the receiver's associations did not end"
        time.sleep(0.01)


def _associate_and_witness(port: int, called: str, calling: str) -> tuple[Association, list[A_ASSOCIATE_RJ]]:
    rejections: list[A_ASSOCIATE_RJ] = []

    def on_pdu(event: evt.Event) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu)

    requestor = AE(ae_title=calling)
    requestor.add_requested_context(Verification)
    assoc = requestor.associate("127.0.0.1", port, ae_title=called, evt_handlers=[(evt.EVT_PDU_RECV, on_pdu)])
    return assoc, rejections


@pytest.mark.peers
def test_associations_are_rejected_as_stated(
    tables: dict[str, Table], receiver: Callable[..., tuple[Settings, Any]]
) -> None:
    settings, server = receiver(allowed_calling_aes=["CONFORMANCE"], max_associations=1)
    expected = {
        row["Condition"].split()[0]: tuple(leading_number(row[key]) for key in ("Result", "Source", "Reason"))
        for row in tables["association-rejections"].rows
    }
    assert set(expected) == {"Called", "Calling", "`max_associations`"}
    cases = {"Called": ("WRONG", "CONFORMANCE"), "Calling": (settings.ae_title, "INTRUDER")}
    for condition, (called, calling) in cases.items():
        _wait_until_idle(server)  # a rejected association's thread counts against the limit until it ends
        assoc, rejections = _associate_and_witness(settings.dicom_port, called, calling)
        assert not assoc.is_established
        assert [(pdu.result, pdu.source, pdu.reason_diagnostic) for pdu in rejections] == [
            expected[condition]
        ]
    _wait_until_idle(server)
    held, _ = _associate_and_witness(settings.dicom_port, settings.ae_title, "CONFORMANCE")
    assert held.is_established
    try:
        assoc, rejections = _associate_and_witness(settings.dicom_port, settings.ae_title, "CONFORMANCE")
        assert not assoc.is_established
        assert [(pdu.result, pdu.source, pdu.reason_diagnostic) for pdu in rejections] == [
            expected["`max_associations`"]
        ]
    finally:
        held.release()


# --- the delivery AE ---------------------------------------------------------------------------


@dataclass
class RecordingPeer:
    """A pynetdicom Storage/Verification SCP that records each A-ASSOCIATE-RQ it is sent."""

    port: int
    requests: list[dict[str, Any]]


@pytest.fixture
def recording_peer() -> Iterator[RecordingPeer]:
    requests: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_requested(event: evt.Event) -> None:
        requestor = event.assoc.requestor
        with lock:
            requests.append(
                {
                    "calling": requestor.primitive.calling_ae_title.strip(),
                    "contexts": sorted(
                        (str(context.abstract_syntax), [str(syntax) for syntax in context.transfer_syntax])
                        for context in requestor.primitive.presentation_context_definition_list
                    ),
                    "implementation_class_uid": str(requestor.implementation_class_uid),
                    "implementation_version_name": requestor.implementation_version_name,
                    "maximum_length": requestor.maximum_length,
                }
            )

    peer = AE(ae_title="PACS")
    peer.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        peer.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    port = free_port()
    server = peer.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_REQUESTED, on_requested), (evt.EVT_C_STORE, lambda event: 0x0000)],
    )
    yield RecordingPeer(port, requests)
    server.shutdown()


def _reports(directory: Path) -> tuple[Path, Path]:
    """A quality SR and a Quality Issue KOS of a tiny failed series, written as qcgate writes them."""
    evidence = mr_series_datasets(
        np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8), series_description="conformance"
    )
    document = SeriesAssessment(
        SeriesStatus.DONE,
        Flag.FAIL,
        ["conformance test"],
        {"snr": MetricResult("snr", 10.0, True)},
        [],
        {"software_version": "0.1.0"},
        len(evidence),
    ).result
    report = build_quality_report(
        evidence, document, series_instance_uid=generate_uid(), sop_instance_uid=generate_uid()
    )
    selection = build_quality_issue_selection(
        evidence, document, series_instance_uid=generate_uid(), sop_instance_uid=generate_uid(), report=report
    )
    return write_report(directory, report)[0], write_report(directory, selection)[0]


@pytest.mark.peers
def test_the_delivery_ae_proposes_as_stated(
    tables: dict[str, Table], recording_peer: RecordingPeer, tmp_path: Path
) -> None:
    rows = {row["When"].split("`")[1]: row for row in tables["scu-contexts"].rows if "`" in row["When"]}
    assert set(rows) == {"POST /api/v1/destinations/{name}/echo", "send_sr", "send_kos", "forward"}

    def stated(row: dict[str, str]) -> tuple[str, list[str]]:
        return code(row["SOP Class UID"]), [code(row["Transfer Syntax UID"])]

    destination = Destination(ae_title="PACS", host="127.0.0.1", port=recording_peer.port)
    dicom_send.echo(destination, calling_ae="QCGATE", timeout_s=10)
    sr, kos = _reports(tmp_path / "sr")
    dicom_send.store_files(destination, [dicom_send.store_item(sr)], calling_ae="QCGATE", timeout_s=10)
    dicom_send.store_files(destination, [dicom_send.store_item(kos)], calling_ae="QCGATE", timeout_s=10)
    received = [Path(get_testdata_file(name)) for name in ("MR_small_jp2klossless.dcm", "MR_small_RLE.dcm")]
    dicom_send.store_files(
        destination, [dicom_send.store_item(path) for path in received], calling_ae="QCGATE", timeout_s=10
    )
    as_received = sorted(
        (str(meta.MediaStorageSOPClassUID), [str(meta.TransferSyntaxUID)])
        for meta in (pydicom.filereader.read_file_meta_info(path) for path in received)
    )
    echo, sent_sr, sent_kos, forward = recording_peer.requests
    assert echo["contexts"] == [stated(rows["POST /api/v1/destinations/{name}/echo"])]
    assert sent_sr["contexts"] == [stated(rows["send_sr"])]
    assert sent_kos["contexts"] == [stated(rows["send_kos"])]
    assert forward["contexts"] == as_received  # one context per file's own syntax, nothing converted
    assert rows["forward"]["Transfer Syntax"] == "as received"
    for request in recording_peer.requests:
        assert request["calling"] == "QCGATE"
        assert request["implementation_class_uid"] == _policy(tables, "Implementation Class UID")
        assert request["implementation_version_name"] == _policy(tables, "Implementation Version Name")
        assert request["maximum_length"] == int(_policy(tables, "Maximum PDU length received, bytes"))


def test_created_objects_are_written_as_the_scu_table_says(tables: dict[str, Table], tmp_path: Path) -> None:
    """Without a network: the SR and KOS files carry the SOP class and transfer syntax stated."""
    stated = {
        code(row["SOP Class UID"]): code(row["Transfer Syntax UID"])
        for row in tables["scu-contexts"].rows
        if row["When"].startswith("routing rule `send_")
    }
    written = {}
    for path in _reports(tmp_path):
        dataset = pydicom.dcmread(io.BytesIO(path.read_bytes()))
        written[str(dataset.SOPClassUID)] = str(dataset.file_meta.TransferSyntaxUID)
    assert written == stated
