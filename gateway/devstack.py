"""Local servers for development and tests: SeaweedFS (S3) and pypiserver/devpi (backing index).

Every server binds to loopback on free ports and keeps its data in a directory it is given, so
a developer's stack and a test run never collide. Stopping is SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class StackError(Exception):
    """A local server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str:
    """A console script of this environment (next to the interpreter), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"{name} is not installed; run `make install` (it comes with the test extra)"
        )
    return found


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is not None:
            return
        # Each server runs in its own process group, so helpers it forked stop with it.
        with _ignore_missing():
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with _ignore_missing():
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def alive(self) -> bool:
        return self.process.poll() is None


class _ignore_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


def launch(
    name: str,
    command: list[str],
    url: str,
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Server:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    server = Server(name, url, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise StackError(f"{name} exited early; see {log_path}:\n{_tail(log_path)}")
        if ready():
            return server
        time.sleep(0.1)
    server.stop()
    raise StackError(f"{name} did not become ready in {timeout}s; see {log_path}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files a server presents (``cert``, ``key``) and, if set, the CAs whose client
    certificates it demands (``client_ca``); ``ca`` is what a client must trust for it."""

    cert: Path
    key: Path
    ca: Path
    client_ca: Path | None = None


def start_seaweedfs(
    data_dir: Path, log_path: Path, tls: TlsFiles | None = None, s3_config: Path | None = None
) -> Server:
    """``weed mini`` with every port chosen here, so nothing else on the machine collides;
    with ``tls``, its S3 port speaks HTTPS only. Without ``s3_config`` (SeaweedFS's JSON of
    identities, their keys and allowed actions) it accepts any request, signed or not."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {
        "master.port": free_port(),
        "master.port.grpc": free_port(),
        "volume.port": free_port(),
        "volume.port.grpc": free_port(),
        "filer.port": free_port(),
        "filer.port.grpc": free_port(),
        "s3.port": free_port(),
        "s3.port.grpc": free_port(),
        "s3.port.iceberg": free_port(),
        "s3.port.lance": free_port(),
        "admin.port": free_port(),
        "admin.port.grpc": free_port(),
        "metricsPort": free_port(),
    }
    command = [
        executable("weed"),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-admin.ui=false",
        # On by default, it reports to telemetry.seaweedfs.com: no egress nobody configured.
        "-master.telemetry=false",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        *_seaweedfs_tls_flags(tls),
        *([f"-s3.config={s3_config}"] if s3_config else []),
    ]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{ports['s3.port']}"
    # Any HTTP answer from the S3 port (even 403 to an unsigned request) means it is serving;
    # over TLS, which may demand a client certificate, a listening port does.
    return launch(
        "seaweedfs",
        command,
        url,
        log_path,
        ready=lambda: _listening(ports["s3.port"]) if tls else http_status(url + "/") is not None,
        env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )


def _seaweedfs_tls_flags(tls: TlsFiles | None) -> list[str]:
    if tls is None:
        return []
    flags = [f"-s3.cert.file={tls.cert}", f"-s3.key.file={tls.key}"]
    if tls.client_ca:
        flags += [f"-s3.cacert.file={tls.client_ca}", "-s3.tlsVerifyClientCert=true"]
    return flags


def start_nginx_tls(
    upstream: str, prefix: Path, tls: TlsFiles, log_path: Path, port: int | None = None
) -> Server:
    """Debian's nginx in the foreground, terminating TLS on loopback (demanding a client
    certificate when ``tls.client_ca`` is set) in front of the plain-HTTP ``upstream``, the
    way a company puts its index behind its own TLS."""
    port = port or free_port()
    client = (
        f"ssl_client_certificate {tls.client_ca}; ssl_verify_client on;" if tls.client_ca else ""
    )
    http = f"""  access_log {prefix / "access.log"};
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {tls.cert};
    ssl_certificate_key {tls.key};
    {client}
    client_max_body_size 0;
    proxy_request_buffering off;
    location / {{
      proxy_pass {upstream};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto https;
    }}
  }}"""
    url = f"https://127.0.0.1:{port}"
    return launch_nginx(prefix, http, url, log_path, ready=lambda: _listening(port))


def launch_nginx(
    prefix: Path,
    http: str,
    url: str,
    log_path: Path,
    ready: Callable[[], bool],
    *,
    error_level: str = "info",
    worker_connections: int = 256,
) -> Server:
    """Debian's nginx in the foreground, one process, everything it writes (pid, logs,
    temporary files) under ``prefix``, serving ``http``: the directives of its ``http``
    block."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise StackError("nginx is not installed; `apt-get install -y nginx` (as root)")
    prefix.mkdir(parents=True, exist_ok=True)
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = prefix / "nginx.conf"
    config.write_text(
        f"""daemon off;
master_process off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} {error_level};
events {{ worker_connections {worker_connections}; }}
http {{
  {temp}
{http}
}}
"""
    )
    command = [nginx, "-p", str(prefix), "-c", str(config), "-e", str(log_path)]
    return launch("nginx", command, url, log_path, ready=ready)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    from passlib.apache import HtpasswdFile  # comes with pypiserver[passlib]

    path.parent.mkdir(parents=True, exist_ok=True)
    htpasswd = HtpasswdFile(str(path), new=True)
    for username, password in users.items():
        htpasswd.set_password(username, password)
    htpasswd.save()


def start_pypiserver(
    packages_dir: Path,
    htpasswd: Path,
    log_path: Path,
    port: int | None = None,
    authenticate: str = "update",
) -> Server:
    """pypiserver guarding ``authenticate`` (``update``: uploads; add ``list,download`` to
    guard reads too)."""
    packages_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        executable("pypi-server"),
        "run",
        "-p",
        str(port),
        "-i",
        "127.0.0.1",
        "-P",
        str(htpasswd),
        "-a",
        authenticate,
        "--disable-fallback",
        str(packages_dir),
    ]
    return launch(
        "pypiserver",
        command,
        url,
        log_path,
        ready=lambda: http_status(url + "/simple/") is not None,
    )


def start_devpi(
    server_dir: Path, log_path: Path, user: str, password: str, index: str = "dev"
) -> Server:
    """devpi-server with ``user/index`` non-volatile and ``user`` able to upload."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if not (server_dir / ".nodeinfo").exists():
        server_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [executable("devpi-init"), "--serverdir", str(server_dir), "--root-passwd", password],
            check=True,
            capture_output=True,
        )
    command = [
        executable("devpi-server"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--serverdir",
        str(server_dir),
    ]
    server = launch(
        "devpi", command, url, log_path, ready=lambda: http_status(url + "/+api") == 200
    )
    _devpi_ensure_index(url, user, password, index)
    server.extra["index_url"] = f"{url}/{user}/{index}/"
    return server


def _devpi_ensure_index(url: str, user: str, password: str, index: str) -> None:
    def call(method: str, path: str, body: dict[str, object], auth: tuple[str, str] | None) -> None:
        request = urllib.request.Request(
            url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        if auth:
            token = _devpi_login(url, *auth)
            request.add_header("X-Devpi-Auth", token)
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # already exists
                raise StackError(f"devpi {method} {path}: {exc.code} {exc.reason}") from exc

    call("PUT", f"/{user}", {"password": password}, None)
    call(
        "PUT",
        f"/{user}/{index}",
        {"type": "stage", "bases": [], "volatile": False, "acl_upload": [user]},
        (user, password),
    )


def _devpi_login(url: str, user: str, password: str) -> str:
    import base64

    request = urllib.request.Request(
        url + "/+login",
        data=json.dumps({"user": user, "password": password}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result = json.loads(response.read())["result"]
    return base64.b64encode(f"{user}:{result['password']}".encode()).decode()
