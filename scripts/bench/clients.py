"""Client plumbing the bench groups share: the bare server, log counts."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from devkit.processes import ServiceProcess, start_service
from devkit.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def bare_mcp_server(topology: Topology, result_json: str = "[]") -> Iterator[ServiceProcess]:
    """Start the bare MCPServer (scripts.bench.bare_mcp) beside the topology; its MCP endpoint is url + /mcp.

    `result_json`: the customers its `customers` tool returns.
    """
    service = start_service(
        "bench-bare-mcp",
        "scripts.bench.bare_mcp",
        port_variable="BENCH_BARE_MCP_PORT",
        env={**topology.env, "PYTHONPATH": str(ROOT), "BENCH_BARE_MCP_RESULT": result_json},
        workdir=topology.workdir / "bench-bare-mcp",
    )
    try:
        yield service
    finally:
        service.stop()


async def customers_json(topology: Topology, token: str) -> str:
    """The user's customers as crm-api lists them (JSON), for the bare server to return as search_customers does."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        response = await http.get(f"{topology.env['CRM_API_URL']}/customers")
        response.raise_for_status()
    return json.dumps(response.json()["customers"])


def cpu_seconds(service: ServiceProcess) -> float:
    """CPU time (user + system) the service's process has used so far; Linux only (/proc), else 0."""
    stat = Path(f"/proc/{service.process.pid if service.process else 0}/stat")
    if not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def auth_server_requests(topology: Topology, method: str, path: str) -> int:
    """How many `method path` requests the auth-server has answered so far, from its own access log."""
    line = re.compile(rf"auth_server\.access: {re.escape(method)} {re.escape(path)} \d{{3}}$", re.MULTILINE)
    return len(line.findall(topology.services["auth-server"].logs()))
