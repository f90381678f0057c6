"""Tokens and roles: the `auth_tokens_file`, and a CLI to manage it.

The file (YAML) names roles and the tokens that act as them:

    roles:
      viewer:                     # what a role may read and write, as fnmatch globs
        see: ["*"]                # topics it may see (and subscribe to)
        see_except: ["/rosout", "/parameter_events"]
        publish: []               # topics it may advertise and publish to
        call: []                  # services it may call
        set_parameters: []        # "node:param" it may set, e.g. "/rover_sim:*"
        admin: false              # sees client addresses in /api/performance/connections
    tokens:
      - name: alice-laptop
        role: viewer
        sha256: 3f1c...           # the token's SHA-256, hex; the token itself is never stored

    python -m rover_ws_bridge.auth add alice-laptop --role viewer --file tokens.yaml
    python -m rover_ws_bridge.auth list --file tokens.yaml
    python -m rover_ws_bridge.auth remove alice-laptop --file tokens.yaml

`add` creates the file, with the example roles below, when it does not exist yet, prints the
new token once and stores only its hash.

Why a plain SHA-256 and no slow password hash (bcrypt, scrypt): the tokens are generated here,
32 random bytes each (256 bits), never chosen by a person. A slow hash protects low-entropy
secrets against guessing from a stolen hash; against 2^256 candidates a single SHA-256 is
already out of reach, and it keeps the check at every handshake cheap (a slow hash per
handshake would be a way to burn the rover's CPU).
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import hmac
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

TOKEN_PREFIX = "rwb_"  # makes a leaked token recognisable (secret scanners, logs)
COOKIE_NAME = "rover_ws_bridge_token"
# Bounds of what is read from a client before hashing: a token is 4 + 43 characters.
MAX_TOKEN_CHARS = 256
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_\-.~+/=]{1,%d}" % MAX_TOKEN_CHARS)
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")

_ROLE_KEYS = ("see", "see_except", "publish", "call", "offer", "set_parameters", "admin")

# Every node's log lines (with file paths) and every parameter change: offered only to those
# who ask (a role naming them; without a token file, the `topics` list).
HIDDEN_BY_DEFAULT = ("/rosout", "/parameter_events")
# The roles a new token file starts with (and the README's worked example).
EXAMPLE_ROLES: dict[str, dict[str, Any]] = {
    "viewer": {"see": ["*"], "see_except": list(HIDDEN_BY_DEFAULT), "publish": [], "call": [],
               "set_parameters": [], "admin": False},
    "operator": {"see": ["*"], "see_except": list(HIDDEN_BY_DEFAULT), "publish": ["/cmd_vel"],
                 "call": ["*"], "set_parameters": ["*"], "admin": False},
    "admin": {"see": ["*"], "see_except": [], "publish": ["*"], "call": ["*"],
              "set_parameters": ["*"], "admin": True},
}


class TokenFileError(ValueError):
    """The token file cannot be used; the message says where and why (one line)."""


def _globs_match(name: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


@dataclass(frozen=True)
class Role:
    name: str
    see: tuple[str, ...] = ()
    see_except: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    call: tuple[str, ...] = ()
    offer: tuple[str, ...] = ()  # services the client may serve (rosbridge advertise_service)
    set_parameters: tuple[str, ...] = ()
    admin: bool = False

    def may_see(self, topic: str) -> bool:
        return _globs_match(topic, self.see) and not _globs_match(topic, self.see_except)

    @classmethod
    def parse(cls, name: str, fields: Any, where: str) -> "Role":
        if not isinstance(fields, dict):
            raise TokenFileError(f"{where}: role {name!r} must be a mapping of {_ROLE_KEYS}")
        unknown = sorted(set(map(str, fields)) - set(_ROLE_KEYS))
        if unknown:
            raise TokenFileError(f"{where}: role {name!r} has unknown key {unknown[0]!r}; "
                                 f"allowed: {', '.join(_ROLE_KEYS)}")
        globs: dict[str, tuple[str, ...]] = {}
        for key in _ROLE_KEYS[:-1]:
            value = fields.get(key, [])
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
                raise TokenFileError(f"{where}: role {name!r}: {key!r} must be a list of globs")
            globs[key] = tuple(value)
        admin = fields.get("admin", False)
        if not isinstance(admin, bool):
            raise TokenFileError(f"{where}: role {name!r}: 'admin' must be true or false")
        return cls(name, admin=admin, **globs)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: str
    sha256: str


@dataclass
class TokenStore:
    """The parsed token file: roles by name, and the hashed tokens."""

    roles: dict[str, Role] = field(default_factory=dict)
    tokens: list[TokenEntry] = field(default_factory=list)

    def identify(self, token: str) -> tuple[TokenEntry, Role] | None:
        """The entry and role a presented token belongs to, or None. Every stored hash is
        compared, in constant time each: neither the answer's timing nor its path tells how
        much of a token was right."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hash_token(token).encode()
        found: TokenEntry | None = None
        for entry in self.tokens:
            if hmac.compare_digest(digest, entry.sha256.encode()):
                found = entry
        if found is None:
            return None
        return found, self.roles[found.role]

    # -- the file ----------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Any, where: str) -> "TokenStore":
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise TokenFileError(f"{where}: expected a mapping with 'roles' and 'tokens'")
        unknown = sorted(set(map(str, data)) - {"roles", "tokens"})
        if unknown:
            raise TokenFileError(f"{where}: unknown key {unknown[0]!r}; allowed: roles, tokens")
        raw_roles = data.get("roles") or {}
        if not isinstance(raw_roles, dict):
            raise TokenFileError(f"{where}: 'roles' must map role names to their rights")
        roles = {}
        for name, fields in raw_roles.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise TokenFileError(f"{where}: role name {name!r} must be 1-64 letters, digits "
                                     "or _.@-")
            roles[name] = Role.parse(name, fields, where)
        raw_tokens = data.get("tokens") or []
        if not isinstance(raw_tokens, list):
            raise TokenFileError(f"{where}: 'tokens' must be a list of {{name, role, sha256}}")
        tokens: list[TokenEntry] = []
        names: set[str] = set()
        for i, item in enumerate(raw_tokens):
            if not isinstance(item, dict) or set(item) != {"name", "role", "sha256"}:
                raise TokenFileError(f"{where}: token #{i + 1} must have exactly name, role "
                                     "and sha256")
            name, role, digest = item["name"], item["role"], item["sha256"]
            if not isinstance(name, str) or not _NAME.fullmatch(name) or name in names:
                raise TokenFileError(f"{where}: token #{i + 1}: name {name!r} must be unique, "
                                     "1-64 letters, digits or _.@-")
            if role not in roles:
                raise TokenFileError(f"{where}: token {name!r}: role {role!r} is not one of the "
                                     f"file's roles ({', '.join(roles) or 'none'})")
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                raise TokenFileError(f"{where}: token {name!r}: sha256 must be 64 lowercase hex "
                                     "digits (the hash, never the token itself)")
            names.add(name)
            tokens.append(TokenEntry(name, role, digest))
        return cls(roles, tokens)

    @classmethod
    def load(cls, path: str | Path) -> "TokenStore":
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise TokenFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1})" if mark is not None else ""
            raise TokenFileError(f"{path} is not valid YAML{at}") from None
        return cls.parse(data, str(path))

    def to_data(self) -> dict[str, Any]:
        return {
            "roles": {name: {"see": list(r.see), "see_except": list(r.see_except),
                             "publish": list(r.publish), "call": list(r.call),
                             "offer": list(r.offer),
                             "set_parameters": list(r.set_parameters), "admin": r.admin}
                      for name, r in self.roles.items()},
            "tokens": [{"name": t.name, "role": t.role, "sha256": t.sha256}
                       for t in self.tokens],
        }

    def save(self, path: str | Path) -> None:
        """Write atomically, readable by the owner only (hashes are not secrets, but the file
        decides who may drive the rover)."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# rover_ws_bridge tokens: manage with python -m rover_ws_bridge.auth\n")
            yaml.safe_dump(self.to_data(), f, sort_keys=False, default_flow_style=None)
        os.replace(temporary, path)


def example_store() -> TokenStore:
    return TokenStore.parse({"roles": EXAMPLE_ROLES, "tokens": []}, "example roles")


def token_shape_ok(token: str) -> bool:
    """Whether a presented token is worth hashing at all (bounded, printable)."""
    return _TOKEN_TEXT.fullmatch(token) is not None


# -- the CLI -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rover_ws_bridge.auth",
        description="Manage the bridge's token file (the auth_tokens_file parameter).")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="generate a token for NAME, print it once, store its hash "
                                     "(creates the file with example roles if missing)")
    add.add_argument("name")
    add.add_argument("--role", required=True)
    remove = sub.add_parser("remove", help="revoke NAME's token")
    remove.add_argument("name")
    listing = sub.add_parser("list", help="the roles and the names of the tokens")
    for p in (add, remove, listing):
        p.add_argument("--file", required=True, type=Path, help="the token file (YAML)")
    args = parser.parse_args(argv)

    try:
        if args.command == "add" and not args.file.exists():
            store = example_store()
        else:
            store = TokenStore.load(args.file)
    except TokenFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.command == "list":
        for name, role in store.roles.items():
            rights = ", ".join(f"{key}={list(getattr(role, key))}" for key in _ROLE_KEYS[:-1])
            print(f"role {name}{' (admin)' if role.admin else ''}: {rights}")
        for entry in store.tokens:
            print(f"token {entry.name}: role {entry.role}")
        return 0
    if args.command == "remove":
        kept = [t for t in store.tokens if t.name != args.name]
        if len(kept) == len(store.tokens):
            print(f"error: no token named {args.name!r} in {args.file}", file=sys.stderr)
            return 1
        store.tokens = kept
        store.save(args.file)
        print(f"removed {args.name}; a running bridge refuses it from its next handshake "
              "(connected clients stay until they reconnect)")
        return 0
    # add
    if not _NAME.fullmatch(args.name):
        print("error: NAME must be 1-64 letters, digits or _.@-", file=sys.stderr)
        return 2
    if args.role not in store.roles:
        print(f"error: role {args.role!r} is not in {args.file}; roles: "
              f"{', '.join(store.roles)}", file=sys.stderr)
        return 2
    if any(t.name == args.name for t in store.tokens):
        print(f"error: {args.name!r} already has a token; remove it first", file=sys.stderr)
        return 1
    token = new_token()
    store.tokens.append(TokenEntry(args.name, args.role, hash_token(token)))
    store.save(args.file)
    print(token)
    print(f"(token of {args.name}, role {args.role}: shown once, only its hash is stored in "
          f"{args.file})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
