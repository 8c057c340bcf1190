"""Debian's nginx as the load balancer in front of the gateway replicas, configured as a
Kubernetes Service / ingress-nginx behaves: round robin, passive health checks (a replica
that fails is skipped for ``fail_timeout``), and a request that could not reach a replica
(connection refused or reset before an answer, or a 502/503/504 to an idempotent request)
tried on the next one. nginx never resends a POST/PATCH that reached a replica: that is the
client's retry to make, and the gateway's to make idempotent (R-W12)."""

from __future__ import annotations

from pathlib import Path

from gateway.devstack import Server, free_port, http_status, launch_nginx

FAIL_TIMEOUT = 2  # seconds a replica that failed is left out


def start_nginx(prefix: Path, replica_ports: list[int], log_path: Path) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return launch_nginx(
        prefix,
        balancer(prefix, port, replica_ports),
        url,
        log_path,
        # Any answer, a 502 while no replica is up included, means nginx is serving.
        ready=lambda: http_status(url + "/healthz") is not None,
        error_level="warn",
        worker_connections=1024,
    )


def balancer(prefix: Path, port: int, replica_ports: list[int]) -> str:
    """The ``http`` block's directives: the replicas behind one port."""
    servers = "\n".join(
        f"    server 127.0.0.1:{p} max_fails=1 fail_timeout={FAIL_TIMEOUT}s;" for p in replica_ports
    )
    return f"""  log_format timed '$msec $remote_addr "$request" $status $request_time '
                   'upstream=$upstream_addr upstream_status=$upstream_status';
  access_log {prefix / "access.log"} timed;
  upstream gateways {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    # Uploads stream through (a replica sees the body as it arrives), as with ingress-nginx's
    # proxy-request-buffering: "off".
    proxy_request_buffering off;
    proxy_http_version 1.1;
    proxy_connect_timeout 2s;
    proxy_read_timeout 120s;
    proxy_send_timeout 120s;
    proxy_next_upstream error timeout http_502 http_503 http_504;
    proxy_next_upstream_tries 3;
    location / {{
      proxy_pass http://gateways;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}"""
