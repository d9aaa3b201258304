"""nginx with the product's config (nginx/*.template, rendered by nginx/render.sh) and TLS from
a self-signed certificate (nginx/selfsigned.sh): the same two scripts `make up` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import requests

from devstack.processes import free_port, start, stop, wait_until
from devstack.settings import ROOT

NGINX_DIR = ROOT / "nginx"


def render_nginx(out: Path, **settings: str) -> Path:
    """Render nginx/*.template into ``out`` with nginx/render.sh; returns ``out``."""
    env = {**os.environ, **settings}
    subprocess.run(["bash", str(NGINX_DIR / "render.sh"), str(out)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return out


def render_tls_nginx(tmp: Path, upstream: str, http: str, https: str, **settings: str):
    """A self-signed certificate under ``tmp/tls`` and the product's nginx config under
    ``tmp/nginx`` proxying to ``upstream``; returns (config dir, certificate to verify with)."""
    tls = tmp / "tls"
    subprocess.run(["bash", str(NGINX_DIR / "selfsigned.sh"), str(tls)], check=True,
                   capture_output=True)  # fmt: skip
    conf = render_nginx(
        tmp / "nginx",
        LISTEN_HTTP=http,
        LISTEN_HTTPS=https,
        UI_UPSTREAM=upstream,
        TLS_CERT=str(tls / "cert.pem"),
        TLS_KEY=str(tls / "key.pem"),
        **settings,
    )
    return conf, str(tls / "cert.pem")


def nginx_argv(conf_dir: Path, *extra: str) -> list[str]:
    """The command that runs (or with ``-t`` checks) a rendered local config."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    return [exe, "-e", "stderr", "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"), *extra]


def wait_for_https(url: str, ca: str) -> None:
    """Until nginx answers /healthz over TLS with the certificate ``ca``."""
    wait_until(
        lambda: requests.get(url + "/healthz", timeout=2, verify=ca).ok,
        timeout=20,
        what=f"nginx over https at {url}",
    )


class Nginx:
    """nginx on free HTTP and HTTPS ports in front of ``upstream``; config and certificate under
    ``tmp``, log in ``log``. ``ca`` is the certificate to verify ``https_url`` with."""

    def __init__(self, tmp: Path, upstream: str, log: Path, **settings: str):
        self.tmp, self.upstream, self.log, self.settings = Path(tmp), upstream, log, settings
        self.http_port, self.https_port = free_port(), free_port()
        self.http_url = f"http://localhost:{self.http_port}"
        self.https_url = f"https://localhost:{self.https_port}"
        self.ca: str | None = None
        self.proc: subprocess.Popen | None = None

    def start(self) -> Nginx:
        conf, self.ca = render_tls_nginx(
            self.tmp,
            upstream=self.upstream,
            http=f"127.0.0.1:{self.http_port}",
            https=f"127.0.0.1:{self.https_port}",
            **self.settings,
        )
        self.proc = start(nginx_argv(conf), log=self.log)
        wait_for_https(self.https_url, self.ca)
        return self

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)
