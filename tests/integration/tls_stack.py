"""A private CA (trustme), and a CONNECT proxy that counts what it carries, for the tests of
a gateway on a corporate network (issue 18)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import trustme

from gateway.devstack import TlsFiles


@dataclass(frozen=True)
class Pki:
    """One company CA with a server certificate (127.0.0.1, localhost) and a client
    certificate, plus an unrelated CA nobody should trust."""

    ca: Path
    server: TlsFiles
    server_with_client_ca: TlsFiles
    client_cert: Path
    client_key: Path
    stranger_ca: Path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Corp Test CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("gateway@corp.test")
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key", "ccert", "ckey")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["ckey"]))
    client.cert_chain_pems[0].write_to_path(str(paths["ccert"]))
    stranger = directory / "stranger-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    plain = TlsFiles(cert=paths["cert"], key=paths["key"], ca=paths["ca"])
    return Pki(
        ca=paths["ca"],
        server=plain,
        server_with_client_ca=TlsFiles(paths["cert"], paths["key"], paths["ca"], paths["ca"]),
        client_cert=paths["ccert"],
        client_key=paths["ckey"],
        stranger_ca=stranger,
    )


class ConnectProxy:
    """An HTTP forward proxy for ``CONNECT host:port`` tunnels, counting each tunnel by its
    request line (``CONNECT 127.0.0.1:1234 HTTP/1.1``): the HTTP version tells Python's
    http.client (1.0) from aiohttp (1.1)."""

    def __init__(self) -> None:
        self.tunnels: Counter[str] = Counter()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def targets(self) -> set[str]:
        with self._lock:
            return {line.split()[1] for line in self.tunnels}

    def reset(self) -> None:
        with self._lock:
            self.tunnels.clear()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            method, target, _ = line.split(" ", 2)
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 CONNECT only\r\nContent-Length: 0\r\n\r\n")
                return
            with self._lock:
                self.tunnels[line] += 1
            host, _, port = target.rpartition(":")
            try:
                upstream = socket.create_connection((host, int(port)), timeout=10)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with upstream:
                _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join()
