"""Tokens, roles, Origin and Host: the policy's decisions, without a socket or ROS."""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest
import yaml
from websockets.datastructures import Headers

from rover_ws_bridge import auth
from rover_ws_bridge.auth import Role, TokenFileError, TokenStore, hash_token, new_token
from rover_ws_bridge.config import BridgeConfig, ConfigError
from rover_ws_bridge.streaming.policy import (
    NEEDS_TOKEN,
    WRONG_TOKEN,
    Client,
    Policy,
    Refusal,
    find_token,
    redact,
)

LOCAL = "127.0.0.1"


def write_tokens(path: Path, **tokens: str) -> dict[str, str]:
    """A token file with the example roles and one token per name=role; returns the tokens."""
    store = auth.example_store()
    made = {}
    for name, role in tokens.items():
        made[name] = new_token()
        store.tokens.append(auth.TokenEntry(name, role, hash_token(made[name])))
    store.save(path)
    return made


def policy(tmp_path: Path | None = None, **params) -> Policy:
    return Policy(BridgeConfig.from_mapping(params))


def headers(host: str = "localhost:8000", **more: str) -> Headers:
    h = Headers([("Host", host)])
    for key, value in more.items():
        h[key.replace("_", "-")] = value
    return h


# -- tokens and the file ---------------------------------------------------------------------


def test_tokens_are_random_and_stored_as_sha256(tmp_path: Path) -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("rwb_") and len(a) >= 40 and auth.token_shape_ok(a)
    assert hash_token(a) == hashlib.sha256(a.encode()).hexdigest()
    path = tmp_path / "tokens.yaml"
    made = write_tokens(path, alice="viewer")
    text = path.read_text()
    assert made["alice"] not in text and hash_token(made["alice"]) in text
    assert os.stat(path).st_mode & 0o077 == 0  # owner only


def test_identify_finds_the_entry_and_role_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    made = write_tokens(path, alice="viewer", bob="operator")
    store = TokenStore.load(path)
    entry, role = store.identify(made["bob"])
    assert entry.name == "bob" and role.name == "operator"
    assert store.identify(made["bob"][:-1] + "x") is None
    assert store.identify("") is None and store.identify("x" * 10_000) is None


@pytest.mark.parametrize("data, words", [
    ([1, 2], "mapping"),
    ({"roles": {}, "tokens": [], "extra": 1}, "unknown key 'extra'"),
    ({"roles": {"v": {"see": "*"}}}, "'see' must be a list"),
    ({"roles": {"v": {"sees": ["*"]}}}, "unknown key 'sees'"),
    ({"roles": {"v": {"admin": "yes"}}}, "'admin' must be true or false"),
    ({"roles": {"v": {}}, "tokens": [{"name": "a", "role": "w", "sha256": "0" * 64}]},
     "role 'w' is not one of"),
    ({"roles": {"v": {}}, "tokens": [{"name": "a", "role": "v", "sha256": "rwb_plain"}]},
     "64 lowercase hex"),
    ({"roles": {"v": {}}, "tokens": [{"name": "a", "role": "v", "sha256": "0" * 64},
                                     {"name": "a", "role": "v", "sha256": "1" * 64}]},
     "must be unique"),
    ({"roles": {"v": {}}, "tokens": [{"name": "a", "role": "v"}]}, "exactly name, role"),
])
def test_a_bad_token_file_is_refused_with_the_reason(data, words: str) -> None:
    with pytest.raises(TokenFileError, match=words):
        TokenStore.parse(data, "tokens.yaml")


def test_a_bad_token_file_stops_start_up_naming_the_parameter(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("roles: [unclosed\n")
    for path in (bad, tmp_path / "missing.yaml"):
        with pytest.raises(ConfigError) as error:
            policy(auth_tokens_file=str(path))
        assert "auth_tokens_file" in str(error.value) and "\n" not in str(error.value)


def test_cli_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.yaml"
    assert auth.main(["add", "alice", "--role", "operator", "--file", str(path)]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenStore.load(path).identify(token)[0].name == "alice"
    assert set(yaml.safe_load(path.read_text())["roles"]) == {"viewer", "operator", "admin"}
    assert auth.main(["add", "alice", "--role", "viewer", "--file", str(path)]) == 1
    assert auth.main(["add", "eve", "--role", "root", "--file", str(path)]) == 2
    capsys.readouterr()
    assert auth.main(["list", "--file", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "token alice: role operator" in listing and token not in listing
    assert auth.main(["remove", "alice", "--file", str(path)]) == 0
    assert TokenStore.load(path).identify(token) is None
    assert auth.main(["remove", "alice", "--file", str(path)]) == 1


# -- where a token comes from ------------------------------------------------------------------


def test_find_token_header_then_query_then_cookie() -> None:
    assert find_token(headers(Authorization="Bearer abc"), "/?token=q") == "abc"
    assert find_token(headers(Authorization="Basic xyz"), "/?a=1&token=q%2Bx") == "q+x"
    assert find_token(headers(Cookie="a=1; rover_ws_bridge_token=c; b=2"), "/") == "c"
    assert find_token(headers(), "/path?tokens=no") is None


def test_redact_hides_tokens_in_paths() -> None:
    assert redact("/foxglove?x=1&token=rwb_secret&y=2") == "/foxglove?x=1&token=[redacted]&y=2"
    assert "secret" not in redact("GET /?TOKEN=secret HTTP/1.1")


# -- authenticate ------------------------------------------------------------------------------


def test_without_a_token_file_everyone_connects_and_the_allowlists_decide() -> None:
    p = policy(publish_allow=["/cmd_vel"])
    client = p.authenticate(headers(), "/", LOCAL)
    assert client == Client(address=LOCAL)
    assert p.may_publish(client, "/cmd_vel") is None
    assert p.may_publish(client, "/other") is not None
    assert p.may_see(client, "/imu")
    assert not p.may_see(client, "/rosout") and not p.may_see(client, "/parameter_events")
    assert policy(topics=["/rosout"]).may_see(client, "/rosout")  # asked for by name
    assert p.may_see_addresses(client) and not p.may_see_addresses(Client("192.0.2.7"))


def test_no_token_or_a_wrong_one_is_401_and_the_right_one_gives_its_role(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    made = write_tokens(path, alice="viewer")
    p = policy(auth_tokens_file=str(path))
    assert p.authenticate(headers(), "/", LOCAL) == Refusal(401, NEEDS_TOKEN)
    assert p.authenticate(headers(), "/?token=rwb_nope", LOCAL) == Refusal(401, WRONG_TOKEN)
    assert p.authenticate(headers(), "/?token=\x00" + "a" * 300, LOCAL).status == 401
    for h, path_ in ((headers(Authorization=f"Bearer {made['alice']}"), "/"),
                     (headers(), f"/foxglove?token={made['alice']}"),
                     (headers(Cookie=f"rover_ws_bridge_token={made['alice']}"), "/")):
        client = p.authenticate(h, path_, LOCAL)
        assert isinstance(client, Client) and client.name == "alice"
        assert client.role.name == "viewer"
    # A public path without a token: a client with no role, that may see and do nothing.
    anonymous = p.authenticate(headers(), "/health", LOCAL, public=True)
    assert isinstance(anonymous, Client) and anonymous.role is None
    assert not p.may_see(anonymous, "/imu") and p.may_publish(anonymous, "/cmd_vel")
    assert p.may_get_parameters(anonymous, "/n") is not None
    assert p.http_path_public("/health") and p.http_path_public("/login?token=x")
    assert not p.http_path_public("/api/performance/connections")
    assert not policy(public_http_paths=["/health"]).http_path_public("/metrics")


def test_a_removed_token_is_refused_from_the_next_request(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    made = write_tokens(path, alice="viewer", bob="viewer")
    p = policy(auth_tokens_file=str(path))
    assert isinstance(p.authenticate(headers(), f"/?token={made['alice']}", LOCAL), Client)
    store = TokenStore.load(path)
    store.tokens = [t for t in store.tokens if t.name != "alice"]
    store.save(path)
    os.utime(path, ns=(1, 1))  # a new mtime even within the same clock tick
    assert p.authenticate(headers(), f"/?token={made['alice']}", LOCAL).status == 401
    assert isinstance(p.authenticate(headers(), f"/?token={made['bob']}", LOCAL), Client)


# -- roles -------------------------------------------------------------------------------------


def test_roles_decide_what_is_seen_and_written(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    write_tokens(path)
    # The allowlists do not matter with a token file: the role's globs do.
    p = policy(auth_tokens_file=str(path), publish_allow=["*"], service_allow=["*"])
    roles = TokenStore.load(path).roles
    viewer = Client(LOCAL, roles["viewer"], "v")
    operator = Client(LOCAL, roles["operator"], "o")
    admin = Client(LOCAL, roles["admin"], "a")
    assert p.may_see(viewer, "/imu") and not p.may_see(viewer, "/rosout")
    assert not p.may_see(viewer, "/parameter_events") and p.may_see(admin, "/rosout")
    refusal = p.may_publish(viewer, "/cmd_vel")
    assert refusal is not None and "role 'viewer'" in refusal
    assert p.may_publish(operator, "/cmd_vel") is None
    assert p.may_publish(operator, "/other") is not None
    assert p.may_call(viewer, "/rover_sim/set_estop") is not None
    assert p.may_call(operator, "/rover_sim/set_estop") is None
    assert p.may_call(operator, "/rover_sim/set_parameters") is not None  # still its own op
    assert p.may_set_parameter(operator, "/rover_sim", "max_speed_mps") is None
    assert p.may_set_parameter(viewer, "/rover_sim", "max_speed_mps") is not None
    assert p.permissions(viewer)["publish"] == [] and p.permissions(operator)["publish"] == \
        ["/cmd_vel"]
    assert not p.may_see_addresses(operator) and p.may_see_addresses(admin)


def test_write_allowed_networks_still_apply_to_a_role(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    write_tokens(path)
    p = policy(auth_tokens_file=str(path))
    operator = Client("192.0.2.7", TokenStore.load(path).roles["operator"], "o")
    assert "write_allowed_networks" in p.may_publish(operator, "/cmd_vel")
    assert p.permissions(operator)["publish"] == []


def test_topic_deny_applies_whatever_the_role() -> None:
    p = policy(topic_deny=["/secret"])
    assert not p.may_see(Client(LOCAL, Role("all", see=("*",))), "/secret")


# -- Host --------------------------------------------------------------------------------------


def test_host_defaults_accept_this_machine_and_refuse_other_names() -> None:
    p = policy(address="0.0.0.0")
    hostname = socket.gethostname()
    for host in ("localhost", "localhost:9000", "127.0.0.1:8000", "[::1]:8000", "::1",
                 hostname, f"{hostname}:8000", f"{hostname}.local", "LOCALHOST."):
        assert p.host_problem(host) is None, host
    for host in ("evil.example.com", "evil.example.com:8000", "192.0.2.55", "", "[::1"):
        problem = p.host_problem(host)
        assert problem is not None and "allowed_hosts" in problem, host
    assert p.host_problem(None) is not None
    refusal = p.authenticate(headers(host="rebind.attacker.test"), "/", LOCAL)
    assert isinstance(refusal, Refusal) and refusal.status == 403


def test_a_local_ip_address_in_host_passes() -> None:
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        pytest.skip("the host name does not resolve here")
    assert policy().host_problem(f"{address}:8000") is None


def test_allowed_hosts_add_names_and_star_allows_any() -> None:
    p = policy(allowed_hosts=["rover.example.com", "*.lan"])
    assert p.host_problem("rover.example.com:8000") is None
    assert p.host_problem("Rover7.LAN") is None
    assert p.host_problem("other.example.com") is not None
    assert policy(allowed_hosts=["*"]).host_problem("anything") is None
    assert policy(allowed_hosts=["*"]).host_problem(None) is None


def test_the_bound_address_is_an_allowed_host() -> None:
    assert policy(address="rover-bridge.example").host_problem("rover-bridge.example:8000") \
        is None


# -- Origin ------------------------------------------------------------------------------------


def test_origin_defaults_same_host_and_localhost_and_no_origin_passes() -> None:
    p = policy()
    assert p.origin_problem(None, "rover") is None
    assert p.origin_problem("http://rover:8000", "rover") is None
    assert p.origin_problem("https://ROVER", "rover") is None
    for origin in ("http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8080"):
        assert p.origin_problem(origin, "rover") is None, origin
    for origin in ("https://evil.example.com", "null", "file://", "http://rover.evil.com",
                   "ftp://rover", "http://[bad"):
        problem = p.origin_problem(origin, "rover")
        assert problem is not None and "allowed_origins" in problem, origin
    refusal = p.authenticate(headers(Origin="https://evil.example.com"), "/", LOCAL)
    assert isinstance(refusal, Refusal) and refusal.status == 403 and "Origin" in refusal.reason


def test_allowed_origins_add_globs_and_star_allows_any() -> None:
    p = policy(allowed_origins=["https://app.foxglove.dev", "http://192.168.1.*:8080"])
    assert p.origin_problem("https://app.foxglove.dev", "rover") is None
    assert p.origin_problem("http://192.168.1.20:8080", "rover") is None
    assert p.origin_problem("http://192.168.1.20:9090", "rover") is not None
    assert policy(allowed_origins=["*"]).origin_problem("null", "rover") is None


def test_host_is_checked_before_origin_and_origin_before_the_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    write_tokens(path)
    p = policy(auth_tokens_file=str(path))
    assert "Host" in p.authenticate(headers(host="evil.test", Origin="https://evil.test"),
                                    "/", LOCAL).reason
    assert p.authenticate(headers(Origin="https://evil.test"), "/", LOCAL).status == 403
    assert p.authenticate(headers(Origin="http://localhost:1234"), "/", LOCAL).status == 401


def test_a_header_given_twice_is_refused() -> None:
    h = Headers([("Host", "localhost"), ("Host", "evil.test")])
    assert policy().authenticate(h, "/", LOCAL) == Refusal(400, "more than one Host or Origin "
                                                                "header")
