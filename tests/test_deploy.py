"""The production shape in docker-compose.yml and the proxy's config, checked for real.

No Docker engine runs here: the compose file is parsed and its services checked, and the
nginx config goes through Debian's ``nginx -t`` with the replicas' names pointed at loopback.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.servers import IN_CI, ROOT

yaml = pytest.importorskip("yaml")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services() -> None:
    """PostgreSQL and Redis with health checks and volumes, two replicas, one proxy."""
    services = compose()["services"]
    assert {"postgres", "redis", "kibitz-1", "kibitz-2", "proxy"} <= set(services)
    volumes = compose()["volumes"]
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
        mounted = [v.split(":")[0] for v in services[name]["volumes"]]
        assert any(m in volumes for m in mounted), f"{name} keeps its data in a named volume"
    for name in ("kibitz-1", "kibitz-2"):
        replica = services[name]
        env = replica["environment"]
        assert env["KIBITZ_DATABASE_URL"].startswith("postgresql://")
        assert env["KIBITZ_REDIS_URL"].startswith("redis://")
        assert "KIBITZ_SECRET_KEY" in env and env["KIBITZ_LIVE_URL"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert replica["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "--live-port" in replica["command"] and "healthcheck" in replica
    proxy = services["proxy"]
    assert any("deploy/nginx.conf" in v for v in proxy["volumes"])
    assert len(proxy["ports"]) == 1, "one origin: pages, API and /ws through one port"


def test_proxy_routes_the_live_channel_with_upgrades() -> None:
    """/ws goes to the replicas' live port with Upgrade headers and long timeouts."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    live = re.search(r"location /ws \{(.*?)\n        \}", conf, re.S)
    assert live is not None
    block = live.group(1)
    assert "proxy_pass http://kibitz_live;" in block
    assert "proxy_set_header Upgrade $http_upgrade;" in block
    assert "proxy_set_header Connection $connection_upgrade;" in block
    assert "proxy_http_version 1.1;" in block
    assert re.search(r"proxy_read_timeout (\d+)h;", block)
    upstream = re.search(r"upstream kibitz_live \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert "kibitz-1:8001" in upstream.group(1) and "kibitz-2:8001" in upstream.group(1)


def test_nginx_accepts_the_proxy_config(tmp_path: Path) -> None:
    """Debian's nginx -t passes on deploy/nginx.conf (replica names mapped to 127.0.0.1)."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        if IN_CI:
            pytest.fail("nginx is missing: apt-get install -y nginx-light")
        pytest.skip("nginx is not installed")
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    (tmp_path / "nginx.conf").write_text(re.sub(r"kibitz-\d+:", "127.0.0.1:", conf))
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
            "-g",
            f"pid {tmp_path / 'nginx.pid'};",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_proxy_limits_are_in_step_with_the_http_port() -> None:
    """nginx's header timeout, header size and keep-alive match kibitz's own HTTP port, and
    it caps live connections per address at kibitz's default."""
    from server.http.protocol import HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_HEADER_BYTES
    from server.settings import load

    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert f"client_header_timeout {int(HEADER_TIMEOUT)}s;" in conf
    assert f"large_client_header_buffers 4 {MAX_HEADER_BYTES // 1024}k;" in conf
    assert f"keepalive_timeout {IDLE_TIMEOUT}s;" in conf
    per_address = load({"KIBITZ_SECRET_KEY": "x"}, create_secret=False).live_per_address
    assert f"limit_conn live_per_address {per_address};" in conf
