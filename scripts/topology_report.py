"""What `make up` tells a newcomer when it cannot do what was asked: the cause first, then the fix.

Two situations, each with a message that leads with what is wrong and the command that fixes it:

- `make up X=y` while a topology runs with other settings: the running services keep the settings they
  started with, so `up` names the settings that differ and says `make down` first, instead of printing
  "Already running" and a banner that describes the settings asked for rather than the ones running.
  The settings a topology started with are kept in .run/topology.settings.json: the values of settings
  that are safe to show (modes, ports, profiles), and only a digest of every other one (secrets).
- A service that does not start: honcho stops every other service when one exits, so "not healthy"
  would blame all seven. The log says which process exited by itself (`stopped (rc=1)`) and its last
  line says why (one line naming the setting, see oauth_tokens.serve); that line, and a fix for it,
  come first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Difference", "differences", "failure_report", "save_settings", "settings_mismatch", "started_at"]

# Settings whose values may be printed: never a secret, key, password or URL (URLs can carry passwords).
_SHOWN = re.compile(r"(_MODE|_PORT|LOG_LEVEL|COMPOSE_PROFILES|_HOST)$")
_STOPPED = re.compile(r"^\S+ system\s+\| (?P<name>[\w-]+)\.\d+ stopped \(rc=(?P<rc>-?\d+)\)$")
_SETTING = re.compile(r"\b(?:Invalid setting|Missing required setting) ([A-Z][A-Z0-9_]+)")
_SERVICE_LINES = 8


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _entry(name: str, value: str) -> dict[str, str]:
    return {"digest": _digest(value), **({"value": value} if _SHOWN.search(name) else {})}


def save_settings(path: Path, effective: dict[str, str], dotenv: dict[str, str]) -> None:
    """Record the settings a topology starts with (digests, values only where safe to show) and when."""
    record = {
        "started_at": time.time(),
        "effective": {name: _entry(name, value) for name, value in effective.items()},
        "dotenv": {name: _digest(value) for name, value in dotenv.items()},
    }
    path.write_text(json.dumps(record, indent=1))
    path.chmod(0o600)


def started_at(path: Path) -> float | None:
    """When the recorded topology started (epoch seconds), if a record exists."""
    try:
        return float(json.loads(path.read_text())["started_at"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Difference:
    """A setting asked for that is not what the running topology started with (values only if safe)."""

    name: str
    running: str | None
    asked: str | None

    def describe(self) -> str:
        if self.asked is None:
            return f"{self.name}: changed (its values are not shown)"
        return f"{self.name}: running with {self.running or '(unset)'}, asked for {self.asked}"


def differences(path: Path, effective: dict[str, str], dotenv: dict[str, str], overrides: set[str]) -> list[Difference]:
    """Settings asked for that differ from the ones the running topology started with.

    A setting given on the command line counts whatever .env says; one only in .env counts when .env
    changed it since the topology started (a plain `make up` after `make up X=y` asks for nothing new).
    """
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []  # started by an older version, or by hand: nothing to compare with
    running: dict[str, dict[str, str]] = record.get("effective", {})
    started_dotenv: dict[str, str] = record.get("dotenv", {})
    found = []
    for name, value in sorted(effective.items()):
        asked = name in overrides or (name in dotenv and started_dotenv.get(name) != _digest(dotenv[name]))
        before = running.get(name)
        if not asked or (before is not None and before["digest"] == _digest(value)):
            continue
        shown = _SHOWN.search(name) is not None
        found.append(Difference(name, (before or {}).get("value") if shown else None, value if shown else None))
    return found


def settings_mismatch(path: Path, pid: int, effective: dict[str, str], dotenv: dict[str, str]) -> str | None:
    """For `up` while a topology runs: None if it runs with what is asked for, else what differs and the fix."""
    changed = differences(path, effective, dotenv, {name for name in effective if name in os.environ})
    if not changed:
        return None
    asked = " ".join(f"{d.name}={d.asked}" for d in changed if d.asked is not None and d.name in os.environ)
    return "\n".join(
        [
            f"Already running (honcho pid {pid}) with other settings than you asked for; it keeps the ones it has:",
            *(f"  {difference.describe()}" for difference in changed),
            f"Fix: make down, then make up{' ' + asked if asked else ''}",
        ]
    )


def _cause(lines: list[str], name: str) -> list[str]:
    """The output lines of one service (honcho prefixes them `HH:MM:SS name.1 | `), without the prefix."""
    prefix = re.compile(rf"^\S+ {re.escape(name)}\.\d+\s+\| ?(?P<text>.*)$")
    texts = [match["text"] for line in lines if (match := prefix.match(line)) and match["text"].strip()]
    return [text.removeprefix(f"{name}: ") for text in texts]  # serve's one line starts with the name


def _fix(cause: str) -> str:
    if "Fix:" in cause:
        return ""  # the service's own message says it
    if (setting := _SETTING.search(cause)) is not None:
        name = setting.group(1)
        return f"Fix: correct {name} in .env (or give it on the command line: make up {name}=...), then make up."
    if "port" in cause and ("in use" in cause or "cannot serve" in cause):
        return "Fix: stop what holds that port, or change the port in .env, then make up."
    return "Fix: see its log lines below, then make up."


def failure_report(log_text: str, unhealthy: list[str], log_name: str) -> str:
    """The message for a `make up` that failed: the services that failed and why first, then the fix."""
    lines = log_text.splitlines()
    failed = [m["name"] for line in lines if (m := _STOPPED.match(line)) and int(m["rc"]) > 0]
    report: list[str] = []
    if failed:
        causes = {name: (_cause(lines, name) or ["(it printed nothing)"]) for name in failed}
        if len(failed) == 1:
            report.append(f"{failed[0]} failed to start: {causes[failed[0]][-1]}")
        else:
            report.append(f"{', '.join(failed)} failed to start:")
            report += [f"  {name}: {causes[name][-1]}" for name in failed]
        report += [fix for name in failed if (fix := _fix(causes[name][-1]))][:1]
        report.append(f"The other services were stopped with it. Full log: {log_name} (make logs).")
        for name in failed:
            if len(causes[name]) > 1:
                report.append(f"\n{name}'s last log lines:")
                report += [f"  {line}" for line in causes[name][-_SERVICE_LINES:]]
        return "\n".join(report)
    report.append(f"Not healthy in time: {', '.join(unhealthy)}. Fix: see their log lines below, then make up.")
    report.append(f"Full log: {log_name} (make logs).")
    for name in unhealthy:
        report.append(f"\n{name}'s last log lines:")
        report += [f"  {line}" for line in (_cause(lines, name) or ["(nothing)"])[-_SERVICE_LINES:]]
    return "\n".join(report)
