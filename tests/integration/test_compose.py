"""compose/docker-compose.yml can't run here (no Docker engine), so it is kept in step with the
programs by reading it: every command is a program this build makes, every MIROIR_* variable is
a configuration key that program reads (its --help lists them), and addresses agree."""
import os
import re
import subprocess
from urllib.parse import urlparse

import yaml

from conftest import BUILD, ROOT

COMPOSE = os.path.join(ROOT, "compose", "docker-compose.yml")
DOCKERFILE = os.path.join(ROOT, "compose", "Dockerfile")
PROGRAMS = {"miroir-gateway": "gateway", "miroir-ingest": "ingest", "miroir-rebalancer": "rebalancer"}


def load():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)["services"]


def help_of(program):
    done = subprocess.run([os.path.join(BUILD, PROGRAMS[program], program), "--help"], capture_output=True, text=True,
                          timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_miroir_service_runs_a_built_program_with_known_keys():
    services = load()
    with open(DOCKERFILE) as f:
        dockerfile = f.read()
    seen = set()
    for name, svc in services.items():
        command = svc.get("command")
        if not command or not command[0].startswith("miroir"):
            continue
        program = command[0]
        seen.add(program)
        assert program in dockerfile, f"{program} is not copied into the image"
        documented = set(re.findall(r"\bMIROIR_[A-Z_]+\b", help_of(program)))
        for var in svc["environment"]:
            assert var in documented, f"{name}: {var} is not a configuration key of {program}"
        for dep, cond in svc["depends_on"].items():
            assert dep in services and cond["condition"] == "service_healthy"
            assert "healthcheck" in services[dep], f"{dep} has no health check"
    assert seen == set(PROGRAMS)


def test_addresses_agree():
    services = load()
    gateway = services["gateway"]
    env = gateway["environment"]
    listen_port = env["MIROIR_GATEWAY_LISTEN"].rsplit(":", 1)[1]
    assert any(p.split(":")[-1] == listen_port for p in gateway["ports"])
    assert f":{listen_port}/health" in " ".join(gateway["healthcheck"]["test"])
    broker_host, broker_port = env["MIROIR_KAFKA_BROKERS"].split(":")
    kafka = services[broker_host]["environment"]
    assert f"PLAINTEXT://{broker_host}:{broker_port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    for spec in env["MIROIR_NODES"].split(","):
        node_id, url = spec.split("=", 1)
        host = urlparse(url)
        assert host.hostname in services, f"node {node_id}: no service {host.hostname}"
        meili = services[host.hostname]
        assert meili["image"].startswith("getmeili/meilisearch:v1.21")
        assert host.port == 7700 and "7700/health" in " ".join(meili["healthcheck"]["test"])
        assert meili["environment"]["MEILI_MASTER_KEY"] == env["MIROIR_NODE_KEY"]
    # Community Edition only: nothing enables Meilisearch's own sharding or network
    with open(COMPOSE) as f:
        text = f.read()
    assert "MEILI_EXPERIMENTAL" not in text and "network" not in text.lower().replace("networks:", "")


def test_help_and_bad_arguments():
    for program in PROGRAMS:
        out = help_of(program)
        assert "usage:" in out and "MIROIR_KAFKA_BROKERS" in out and "MIROIR_CONFIG" in out
        bad = subprocess.run([os.path.join(BUILD, PROGRAMS[program], program), "--bogus"], capture_output=True,
                             text=True, timeout=10)
        assert bad.returncode == 2 and "usage:" in bad.stderr


def test_the_dockerfile_installs_every_library_the_build_needs():
    """Each pkg-config module CMake requires comes from a Debian -dev package; the image's build
    stage must install it, and the local set-up (miroir.sh) too."""
    debian = {"rdkafka": "librdkafka-dev", "libmicrohttpd": "libmicrohttpd-dev", "jansson": "libjansson-dev",
              "libcurl": "libcurl4-openssl-dev", "libxxhash": "libxxhash-dev", "libjwt": "libjwt-dev",
              "libcrypto": "libssl-dev", "cmocka": "libcmocka-dev", "zlib": "zlib1g-dev",
              "libbrotlienc": "libbrotli-dev", "libbrotlidec": "libbrotli-dev"}
    modules = set()
    for path in ("CMakeLists.txt", os.path.join("tests", "CMakeLists.txt")):
        with open(os.path.join(ROOT, path)) as f:
            modules |= set(re.findall(r"pkg_check_modules\(\w+ REQUIRED IMPORTED_TARGET (\S+)\)", f.read()))
    assert modules and modules <= set(debian), modules - set(debian)
    with open(DOCKERFILE) as f:
        dockerfile = f.read()
    with open(os.path.join(ROOT, "miroir.sh")) as f:
        script = f.read()
    for module in modules:
        assert debian[module] in dockerfile, debian[module]
        assert debian[module] in script, debian[module]
