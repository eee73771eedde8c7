"""The topology's services, listed once: `make up` (scripts.topology), the scaled layout (scaled_layout,
`make up REPLICAS=N`), the test and bench topologies (topology, scaled) and the Kubernetes secrets all read
this list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# The calendar's authorization server is auth_server run with this config (its own issuer, users, keys).
CALENDAR_AUTH_SERVER_CONFIG = ROOT / "services" / "calendar-api" / "auth-server.toml"


@dataclass(frozen=True)
class Service:
    """One service of the topology: how it is run, where it listens, what it keeps, what it is for."""

    name: str
    module: str
    port_variable: str
    default_port: int
    role: str
    path: str = ""
    # Durable state: a data directory (<PREFIX>_DATA_DIR, default data/<name>) and, scaled, a database.
    durable: bool = False
    # Keeps its state in process memory (a third party's stand-in): never more than one replica.
    single_instance: bool = False
    # Has no readiness endpoint (nothing shared to wait for): HAProxy checks its liveness.
    liveness_only: bool = False

    @property
    def prefix(self) -> str:
        """The prefix of its settings: CALENDAR_AUTH_SERVER for calendar-auth-server."""
        return self.port_variable.removesuffix("_PORT")

    @property
    def metrics_port_variable(self) -> str:
        return f"{self.prefix}_METRICS_PORT"

    @property
    def data_dir_variable(self) -> str | None:
        return f"{self.prefix}_DATA_DIR" if self.durable else None

    @property
    def default_data_dir(self) -> str:
        return f"data/{self.name}"

    @property
    def database(self) -> str | None:
        """Its PostgreSQL database in the scaled topology and on Kubernetes."""
        return self.name.replace("-", "_") if self.durable else None


SERVICES = (
    Service(
        "auth-server",
        "auth_server",
        "AUTH_SERVER_PORT",
        9000,
        "OAuth 2.1 authorization server (local stand-in)",
        durable=True,
    ),
    Service(
        "weather-api", "weather_api", "WEATHER_API_PORT", 8004, "external weather SaaS stand-in (pattern 1: API key)"
    ),
    Service(
        "crm-api", "crm_api", "CRM_API_PORT", 8003, "internal CRM backend (pattern 3: token cascade)", durable=True
    ),
    Service(
        "tickets-mcp",
        "tickets_mcp",
        "TICKETS_MCP_PORT",
        8002,
        "tickets MCP server (pattern 2: client credentials)",
        "/mcp",
        durable=True,
    ),
    Service(
        "calendar-auth-server",
        "auth_server",
        "CALENDAR_AUTH_SERVER_PORT",
        9001,
        "the calendar SaaS's own authorization server",
        durable=True,
    ),
    Service(
        "calendar-api",
        "calendar_api",
        "CALENDAR_API_PORT",
        8005,
        "calendar SaaS stand-in (pattern 4: the user's own account)",
        single_instance=True,
        liveness_only=True,
    ),
    Service("crm-mcp", "crm_mcp", "CRM_MCP_PORT", 8001, "the MCP server you connect to", "/mcp", durable=True),
)
SERVICES_BY_NAME = {service.name: service for service in SERVICES}


def service(name: str) -> Service:
    """The service called `name` (KeyError for any other)."""
    return SERVICES_BY_NAME[name]
