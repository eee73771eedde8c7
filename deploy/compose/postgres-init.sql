-- One database per service in the scaled profile's PostgreSQL (docker-compose.yml), created on first start.
CREATE DATABASE auth_server;
CREATE DATABASE calendar_auth_server;
CREATE DATABASE crm_mcp;
CREATE DATABASE crm_api;
CREATE DATABASE tickets_mcp;
