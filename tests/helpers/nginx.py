"""A real nginx (Debian's package) in front of a test stack, run from compose/nginx.conf itself.

The config is the production file with only what a test on loopback must change:
the upstream's address, the ports, the pid and temp paths, and the `user` line
(a test does not run as root's nginx user). Whatever else that file says is
what the tests exercise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.support import ROOT, Service, free_port, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONFIG = ROOT / "compose" / "nginx.conf"


def _sub(pattern: str, replacement: str, text: str) -> str:
    """re.sub that fails loudly when compose/nginx.conf no longer has what a test relies on."""
    changed, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if not count:
        raise AssertionError(f"compose/nginx.conf has no match for {pattern!r}")
    return changed


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with openssl, for the TLS listener."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Nginx:
    """nginx on two free ports (plain and TLS) in front of `upstreams` (host:port each)."""

    def __init__(
        self,
        workdir: Path,
        upstreams: list[str],
        *,
        ws_read_timeout: str | None = None,
        drop_upgrades: bool = False,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.tls_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tls_url = f"https://127.0.0.1:{self.tls_port}"
        (workdir / "temp").mkdir(parents=True, exist_ok=True)
        cert, key = self_signed(workdir)
        text = CONFIG.read_text()
        text = _sub(r"^user nginx;$", "", text)
        text = _sub(r"^pid .*;$", f"pid {workdir}/nginx.pid;", text)
        # Docker's DNS and `resolve` (nginx >= 1.27.3) have no place on loopback.
        text = _sub(r"^\s*resolver .*;$", "", text)
        servers = "\n".join(f"        server {upstream};" for upstream in upstreams)
        text = _sub(r"^\s*server web:8000 resolve;$", servers, text)
        temp = workdir / "temp"
        paths = "".join(
            f"    {name}_temp_path {temp}/{name};\n"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        text = _sub(r"^http \{$", "http {\n" + paths, text)
        listen = (
            f"listen {self.port} default_server;\n"
            f"        listen {self.tls_port} ssl;\n"
            f"        ssl_certificate {cert};\n"
            f"        ssl_certificate_key {key};"
        )
        text = _sub(r"listen 80 default_server;", listen, text)
        if ws_read_timeout is not None:
            # The 60 s default, or the file's own, scaled down so a test need not wait it out.
            text = _sub(
                r"proxy_read_timeout 3600s;\n(\s*)proxy_send_timeout",
                (f"proxy_read_timeout {ws_read_timeout};\n\\1proxy_send_timeout"),
                text,
            )
        if drop_upgrades:
            # A proxy that knows nothing of WebSockets: the handshake reaches the app as a
            # plain GET, without Upgrade.
            text = _sub(r"^\s*proxy_set_header Upgrade\s+\$http_upgrade;$", "", text)
            text = _sub(
                r"proxy_set_header Connection\s+\$connection_upgrade;",
                'proxy_set_header Connection "";',
                text,
            )
        self.config = workdir / "nginx.conf"
        self.config.write_text(text)
        self.service: Service | None = None

    def start(self) -> Nginx:
        """Checks the config, then runs nginx in the foreground until stop()."""
        check = subprocess.run(
            [NGINX, "-t", "-c", str(self.config), "-p", str(self.workdir), "-e", "stderr"],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        self.service = Service(
            "nginx",
            [NGINX, "-c", str(self.config), "-p", str(self.workdir), "-e", "stderr",
             "-g", "daemon off;"],
            {"PATH": "/usr/sbin:/usr/bin:/bin"},
            self.workdir / "nginx.log",
        )  # fmt: skip
        service = self.service

        def answers() -> httpx.Response:
            service.assert_alive()
            return httpx.get(f"{self.base_url}/accounts/login/")

        wait_for(answers, timeout=15)
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
