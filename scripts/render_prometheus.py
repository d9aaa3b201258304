"""Render the Prometheus configs: the local one for this machine's ports, or the production
one for a project.

``python scripts/render_prometheus.py OUT`` writes a config whose targets use the ports from
the environment (API_PORT, UI_PORT, ... with the defaults of scripts/up.sh) and whose rule
files are found by absolute path, so Prometheus can read it from var/. The live monitoring test
calls :func:`render` with free ports and a 1 s interval.

``python scripts/render_prometheus.py --production --project NAME OUT`` writes
monitoring/prometheus/prometheus.yml with EC2 discovery filtering on ``Project=NAME``: the
monitoring box's bootstrap runs exactly this. Standard library only (the box has no venv).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "monitoring" / "prometheus" / "prometheus.local.yml"
PRODUCTION = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
# The one place prometheus.yml names the project (the &ec2 anchor's tag filter).
PROJECT_FILTER = "values: [pneumonia]"
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,20}$")  # terraform's rule for var.project

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


def render_production(project: str, template: Path = PRODUCTION) -> str:
    """prometheus.yml discovering the instances tagged ``Project=<project>``.

    Refuses a name terraform would refuse, and a template whose filter is not written exactly
    once (a silent miss would discover nothing: every target absent, no error anywhere).
    """
    if not PROJECT_NAME.match(project):
        raise ValueError(f"project {project!r}: 2-21 lowercase letters, digits or dashes")
    text = template.read_text()
    code = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    found = sum(PROJECT_FILTER in ln for ln in code)
    if found != 1:
        raise ValueError(f"{template}: {PROJECT_FILTER!r} appears {found} times, expected once")
    return (
        "\n".join(
            ln
            if ln.lstrip().startswith("#")
            else ln.replace(PROJECT_FILTER, f"values: [{project}]")
            for ln in text.splitlines()
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the rendered config")
    parser.add_argument("--interval", help="scrape and evaluation interval, e.g. 1s")
    parser.add_argument("--production", action="store_true", help="render prometheus.yml")
    parser.add_argument("--project", help="with --production: the Project tag to discover")
    args = parser.parse_args()
    if args.production and not args.project:
        parser.error("--production needs --project NAME")
    text = (
        render_production(args.project)
        if args.production
        else render(ports_from_env(), args.interval)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
