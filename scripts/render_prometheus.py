"""Render monitoring/prometheus/prometheus.local.yml for this machine's ports.

``python scripts/render_prometheus.py OUT`` writes a config whose targets use the ports from
the environment (API_PORT, UI_PORT, ... with the defaults of scripts/up.sh) and whose rule
files are found by absolute path, so Prometheus can read it from var/. The live monitoring test
calls :func:`render` with free ports and a 1 s interval. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "monitoring" / "prometheus" / "prometheus.local.yml"

# default port in the template -> environment variable that moves it
PORT_VARS = {
    9090: "PROMETHEUS_PORT",
    9100: "NODE_EXPORTER_PORT",
    5000: "API_PORT",
    5001: "UI_PORT",
    9101: "WORKER_METRICS_PORT",
    9121: "REDIS_EXPORTER_PORT",
    9113: "NGINX_EXPORTER_PORT",
}


def ports_from_env(env=os.environ) -> dict[int, int]:
    """Template port -> actual port, from the environment (unset: unchanged)."""
    return {default: int(env.get(var) or default) for default, var in PORT_VARS.items()}


def render(ports: dict[int, int], interval: str | None = None, template: Path = TEMPLATE) -> str:
    """The local config with ``ports`` swapped in, absolute rule paths, optional interval."""
    text = template.read_text()

    def swap(match: re.Match) -> str:
        port = int(match.group(1))
        return f"127.0.0.1:{ports.get(port, port)}"

    text = re.sub(r"127\.0\.0\.1:(\d+)", swap, text)
    text = text.replace("  - rules/", f"  - {template.parent / 'rules'}/")
    if interval:
        for key in ("scrape_interval", "scrape_timeout", "evaluation_interval"):
            text = re.sub(rf"^(  {key}:) \S+", rf"\1 {interval}", text, count=1, flags=re.M)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the rendered config")
    parser.add_argument("--interval", help="scrape and evaluation interval, e.g. 1s")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(ports_from_env(), args.interval))


if __name__ == "__main__":
    main()
