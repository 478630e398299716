#!/usr/bin/env python3
"""Validate a rendered service.yaml before it replaces the live one.

Usage: validate_config.py FILE. Exit 0 when valid; otherwise exit 1 and print one line per
problem to stderr (never the admin password). Needs PyYAML, which every Ansible
controller's Python has (the role runs it with ansible_playbook_python).
"""

from __future__ import annotations

import re
import sys

import yaml

HOSTNAME = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
LOG_LEVELS = {"debug", "info", "warning", "error"}
BALANCING = {"round_robin", "least_conn", "ip_hash"}
PROTOCOLS = {"TLSv1.2", "TLSv1.3"}


def port_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def check(doc: object) -> list[str]:
    if not isinstance(doc, dict):
        return ["the file is not a YAML mapping"]
    errors: list[str] = []
    service = doc.get("service") or {}
    listen = doc.get("listen") or {}
    upstream = doc.get("upstream") or {}

    if not isinstance(service.get("name"), str) or not service["name"].strip():
        errors.append("service.name: must be a non-empty string")
    if service.get("log_level") not in LOG_LEVELS:
        errors.append(f"service.log_level: must be one of {sorted(LOG_LEVELS)}")

    if not port_ok(listen.get("port")):
        errors.append(f"listen.port: {listen.get('port')!r} is not a TCP port (1-65535)")
    names = listen.get("server_names") or []
    if not names:
        errors.append("listen.server_names: at least one server name is needed")
    for name in names:
        if not isinstance(name, str) or not HOSTNAME.match(name.lower()):
            errors.append(f"listen.server_names: {name!r} is not a valid host name")
    tls = listen.get("tls") or {}
    if tls.get("enabled"):
        for key in ("cert_file", "key_file"):
            path = tls.get(key)
            if not isinstance(path, str) or not path.startswith("/"):
                errors.append(f"listen.tls.{key}: an absolute path is needed when TLS is enabled")
        protocols = tls.get("protocols") or []
        if not protocols or not set(protocols) <= PROTOCOLS:
            errors.append(
                f"listen.tls.protocols: must be a non-empty subset of {sorted(PROTOCOLS)}"
            )

    if upstream.get("load_balancing") not in BALANCING:
        errors.append(f"upstream.load_balancing: must be one of {sorted(BALANCING)}")
    servers = upstream.get("servers") or []
    if not servers:
        errors.append("upstream.servers: at least one upstream server is needed")
    seen: set[str] = set()
    for i, server in enumerate(servers):
        where = f"upstream.servers[{i}] ({server.get('name')!r})"
        if server.get("name") in seen:
            errors.append(f"{where}: duplicate upstream name")
        seen.add(server.get("name"))
        if not isinstance(server.get("host"), str) or not server["host"].strip():
            errors.append(f"{where}: host must be a non-empty string")
        if not port_ok(server.get("port")):
            errors.append(f"{where}: port {server.get('port')!r} is not a TCP port (1-65535)")
        weight = server.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
            errors.append(f"{where}: weight {weight!r} must be between 1 and 100")
    if servers and all(server.get("backup") for server in servers):
        errors.append("upstream.servers: at least one server must not be a backup server")

    admin = doc.get("admin")
    if admin is not None and (
        not isinstance(admin.get("password"), str) or len(admin["password"]) < 8
    ):
        errors.append("admin.password: must be at least 8 characters")
    return errors


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} FILE", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except OSError as exc:
        print(f"cannot read the config: {exc}", file=sys.stderr)
        return 1
    except yaml.YAMLError as exc:
        # Only the problem and its position: the default message quotes the line, which
        # could be the admin password's.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        print(
            f"not valid YAML{where}: {getattr(exc, 'problem', None) or 'parse error'}",
            file=sys.stderr,
        )
        return 1
    errors = check(doc)
    for error in errors:
        print(f"invalid config: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
