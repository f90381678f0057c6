"""Protocol selection: the client's subprotocol order, then the URL path, then the default."""
from __future__ import annotations

import pytest

from rover_ws_bridge import PROTOCOL_NAME
from rover_ws_bridge.protocols import PROTOCOLS, ProtocolRefused, Selection, select_protocol


def test_a_subprotocol_we_speak_is_chosen_and_echoed():
    assert select_protocol([PROTOCOL_NAME], "/", PROTOCOL_NAME) == Selection(PROTOCOL_NAME,
                                                                             PROTOCOL_NAME)


def test_the_clients_order_wins_and_unknown_names_are_skipped():
    assert select_protocol(["x.v9", PROTOCOL_NAME], "/", PROTOCOL_NAME).subprotocol \
        == PROTOCOL_NAME


def test_offering_only_unknown_subprotocols_is_refused_with_what_we_speak():
    with pytest.raises(ProtocolRefused, match=PROTOCOL_NAME):
        select_protocol(["x.v9"], "/", PROTOCOL_NAME)


def test_no_subprotocol_takes_the_path_then_the_default():
    assert select_protocol([], "/native?token=1", "other") == Selection(PROTOCOL_NAME, None)
    assert select_protocol([], "/native/", "other").name == PROTOCOL_NAME
    assert select_protocol([], "/", PROTOCOL_NAME) == Selection(PROTOCOL_NAME, None)
    assert select_protocol([], "/anything", "whatever").name == "whatever"


def test_every_registered_protocol_names_its_subprotocols_or_is_reachable_by_path():
    # rosbridge has no subprotocol (roslib offers none): its path and the default reach it.
    for name, protocol in PROTOCOLS.items():
        if protocol.subprotocols:
            assert name in protocol.subprotocols
        else:
            assert select_protocol([], protocol.path, "other").name == name
