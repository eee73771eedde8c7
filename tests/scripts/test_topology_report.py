"""What `make up` and `make trace` say when they cannot do what was asked (scripts.topology_report, scripts.trace).

The whole-topology cases (a running topology asked for another mode, a bad setting in one service) run
real services in tests/scripts/test_topology.py; these check the messages' rules on recorded input.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from oauth_tokens.trace_file import SpanRecord

from scripts.topology_report import differences, failure_report, save_settings
from scripts.trace import earlier_topology

ROOT = Path(__file__).resolve().parents[2]

TWO_FAILED = """\
10:00:00 system                 | crm-api.1 started (pid=1)
10:00:00 system                 | crm-mcp.1 started (pid=2)
10:00:00 system                 | weather-api.1 started (pid=3)
10:00:01 crm-mcp.1              | Traceback (most recent call last):
10:00:01 crm-mcp.1              |   File "x.py", line 1
10:00:01 crm-mcp.1              | crm-mcp: The signing key file /d/keys.json is damaged. Fix: delete it
10:00:01 crm-api.1              | crm-api: Missing required setting CRM_API_AUDIENCE
10:00:02 system                 | crm-mcp.1 stopped (rc=1)
10:00:02 system                 | crm-api.1 stopped (rc=1)
10:00:02 system                 | sending SIGTERM to weather-api.1 (pid 3)
10:00:02 system                 | weather-api.1 stopped (rc=-15)
"""


def test_only_the_services_that_exited_by_themselves_are_named_first_with_their_causes() -> None:
    report = failure_report(TWO_FAILED, ["crm-api", "crm-mcp", "weather-api"], ".run/topology.log").splitlines()
    assert report[0] == "crm-mcp, crm-api failed to start:"
    assert report[1] == "  crm-mcp: The signing key file /d/keys.json is damaged. Fix: delete it"
    assert report[2] == "  crm-api: Missing required setting CRM_API_AUDIENCE"
    assert report[3].startswith("Fix: correct CRM_API_AUDIENCE in .env")  # the key message carries its own fix
    assert "weather-api" not in "\n".join(report)


def test_services_that_never_became_healthy_are_named_when_none_exited() -> None:
    log = "10:00:00 crm-mcp.1 | waiting for tickets-mcp\n10:00:00 weather-api.1 | serving\n"
    report = failure_report(log, ["crm-mcp"], ".run/topology.log").splitlines()
    assert report[0].startswith("Not healthy in time: crm-mcp. Fix:")
    assert "  waiting for tickets-mcp" in report
    assert "  serving" not in report


def test_only_settings_asked_for_count_and_secrets_are_never_written_or_shown(tmp_path: Path) -> None:
    record = tmp_path / "settings.json"
    dotenv = {"CRM_API_AUTH_MODE": "cascade", "CRM_MCP_VAULT_KEYS": "k1:s3cret"}
    save_settings(record, {**dotenv, "CRM_API_AUTH_MODE": "exchange"}, dotenv)  # started with an override
    assert "s3cret" not in record.read_text()
    assert oct(record.stat().st_mode & 0o777) == "0o600"

    assert differences(record, dotenv, dotenv, overrides=set()) == []  # a plain `make up` asks nothing new
    [mode] = differences(record, dotenv, dotenv, overrides={"CRM_API_AUTH_MODE"})
    assert mode.describe() == "CRM_API_AUTH_MODE: running with exchange, asked for cascade"
    edited = {**dotenv, "CRM_MCP_VAULT_KEYS": "k2:other"}  # .env edited since the start
    [key] = differences(record, {**edited, "CRM_API_AUTH_MODE": "exchange"}, edited, overrides=set())
    assert key.describe() == "CRM_MCP_VAULT_KEYS: changed (its values are not shown)"


def span(start_s: float) -> SpanRecord:
    start = int(start_s * 1e9)
    return SpanRecord("crm-mcp", "ab" * 16, "cd" * 8, None, "tools/call", "server", start, start + 1000, 0)


def test_a_trace_older_than_the_running_topology_is_marked() -> None:
    now = time.time()
    note = earlier_topology([span(now - 60)], topology_started=now - 10)
    assert note is not None
    assert note.startswith("Note: an EARLIER topology's trace")
    assert earlier_topology([span(now)], topology_started=now - 10) is None
    assert earlier_topology([span(now - 60)], topology_started=None) is None


def test_an_unknown_trace_id_is_called_unknown(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "scripts.trace", "bogus", "--dir", str(traces)],
        cwd=ROOT,
        env={**os.environ, "TOPOLOGY_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("Unknown trace id 'bogus': no trace in")
    assert "make demo" not in result.stdout
