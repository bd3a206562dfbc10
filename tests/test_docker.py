"""The Docker image, without a Docker engine: the Dockerfile's essentials, read from the file, and
the environment its build stage makes, built the same way in a temporary virtualenv and served from.

No hadolint here: it is a binary outside the locks, so the Dockerfile is parsed instead and the
rules the image rests on are checked one by one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack import FakeSlack
from tests.processes import LISTENING, free_port, wait_for_line
from tests.test_cli import _mention_and_wait_for_the_answer

REPO = Path(__file__).resolve().parents[1]
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case: FROM, RUN, COPY, …
    args: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The instructions of each stage (a stage starts at its FROM): comments dropped, continued
    lines joined."""
    stages: list[list[Instruction]] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        name, _, args = logical.partition(" ")
        logical = ""
        instruction = Instruction(name.upper(), " ".join(args.split()))
        if instruction.name == "FROM":
            stages.append([])
        if not stages:
            raise AssertionError(f"{instruction.name} before the first FROM")
        stages[-1].append(instruction)
    return stages


def _args(stage: list[Instruction], name: str) -> list[str]:
    return [i.args for i in stage if i.name == name]


def _exec_form(args: str) -> list[str]:
    """A JSON-array argument (``["a", "b"]``), or its words in shell form."""
    if args.startswith("["):
        parsed: list[str] = json.loads(args)
        return parsed
    return shlex.split(args)


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def test_two_stages_on_the_same_slim_base(stages: list[list[Instruction]]) -> None:
    assert len(stages) == 2
    build, final = (stage[0].args.split() for stage in stages)
    assert build[0] == final[0] == "python:3.11-slim"
    assert build[1:] == ["AS", "build"] or build[1:] == ["as", "build"]


def test_the_build_stage_installs_from_the_lock_and_resolves_nothing(stages: list[list[Instruction]]) -> None:
    runs = [shlex.split(args) for args in _args(stages[0], "RUN")]
    installs = [words for words in runs if words[:2] == ["pip", "install"]]
    assert [words[2:] for words in installs] == [
        ["--require-hashes", "-r", "requirements-runtime.lock"],
        ["--no-deps", "--no-build-isolation", "."],
    ]
    assert ["COPY", "requirements-runtime.lock ./"] in [[i.name, i.args] for i in stages[0]]


def test_the_final_stage_takes_only_the_installed_environment(stages: list[list[Instruction]]) -> None:
    final = stages[1]
    assert not _args(final, "ADD")
    assert _args(final, "COPY") == ["--from=build /opt/venv /opt/venv"]
    path = next(a for a in _args(final, "ENV") if "PATH=" in a)
    assert "PATH=/opt/venv/bin:$PATH" in path.split()


def test_it_runs_as_a_user_other_than_root(stages: list[list[Instruction]]) -> None:
    users = _args(stages[1], "USER")
    assert users, "the final stage sets no USER: the bot would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    names = [i.name for i in stages[1]]
    assert names.index("USER") > max(i for i, name in enumerate(names) if name in {"RUN", "COPY"})


def test_the_database_lives_on_a_volume_the_user_owns(stages: list[list[Instruction]]) -> None:
    final = stages[1]
    assert [_exec_form(a) for a in _args(final, "VOLUME")] == [["/data"]]
    env = " ".join(_args(final, "ENV")).split()
    assert "ANALYST_DB=/data/analyst.db" in env
    setup = " ".join(_args(final, "RUN"))
    user = _args(final, "USER")[-1]
    assert f"chown {user} /data" in setup


def test_the_healthcheck_asks_the_bot(stages: list[list[Instruction]]) -> None:
    (healthcheck,) = _args(stages[1], "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert _exec_form(command) == ["slack-analyst", "healthcheck"]
    assert "--interval=" in options and "--timeout=" in options
    assert [_exec_form(a) for a in _args(stages[1], "ENTRYPOINT")] == [["slack-analyst"]]


def test_no_secret_is_baked_in(stages: list[list[Instruction]]) -> None:
    for stage in stages:
        for instruction in stage:
            if instruction.name in {"ENV", "ARG", "LABEL"}:
                names = [word.split("=")[0] for word in shlex.split(instruction.args)]
                assert not [n for n in names if SECRET_NAME.search(n)], instruction
            assert not re.search(r"xox[a-z]-|sk-ant-", instruction.args), instruction
            assert ".env" not in instruction.args.split(), instruction


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv*", ".env", "data", ".pytest_cache", ".mypy_cache", ".ruff_cache"} <= ignored


def test_compose_runs_http_mode_with_the_database_on_a_named_volume() -> None:
    compose = (REPO / "compose.yaml").read_text()
    assert re.search(r"^\s+build: \.$", compose, re.MULTILINE)
    assert re.search(r'^\s+command: \["serve", "--http"\]$', compose, re.MULTILINE)
    assert re.search(r"^\s+env_file: \.env$", compose, re.MULTILINE)
    assert re.search(r'^\s+- "3000:3000"$', compose, re.MULTILINE)
    assert re.search(r"^\s+restart: (unless-stopped|always)$", compose, re.MULTILINE)
    volume = re.search(r"^\s+- ([\w-]+):/data$", compose, re.MULTILINE)
    assert volume is not None
    assert re.search(rf"^volumes:\n  {volume[1]}:", compose, re.MULTILINE)


def _compose_services() -> dict[str, str]:
    """compose.yaml's services, each as its block of text (no YAML parser in the dependencies)."""
    compose = (REPO / "compose.yaml").read_text()
    services = compose.split("\nservices:\n", 1)[1].split("\n\n", -1)
    blocks = [block for block in services if re.match(r"^  [\w-]+:$", block.split("\n", 1)[0])]
    return {block.split("\n", 1)[0].strip().rstrip(":"): block for block in blocks}


def test_compose_has_a_replicas_profile_of_postgresql_two_replicas_and_a_balancer() -> None:
    """README, "Running several replicas": `docker compose --profile replicas up -d balancer`."""
    services = _compose_services()
    assert "profiles" not in services["analyst"]  # `docker compose up -d` still starts the single bot
    for name in ("db", "replica", "balancer"):
        assert re.search(r'^    profiles: \["replicas"\]$', services[name], re.MULTILINE), name
    assert re.search(r"^    image: postgres:15$", services["db"], re.MULTILINE)
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?" in services["db"]  # never a default password
    replica = services["replica"]
    assert re.search(r'^    command: \["serve", "--http"\]$', replica, re.MULTILINE)
    assert re.search(r"^      ANALYST_DB: postgresql://analyst:\$\{POSTGRES_PASSWORD\}@db:5432/analyst$", replica, re.M)
    assert re.search(r"^      replicas: 2$", replica, re.MULTILINE)
    assert re.search(r"^        condition: service_healthy$", replica, re.MULTILINE)
    assert "ports:" not in replica  # only the balancer is reachable from outside
    assert re.search(r'^      - "3000:3000"$', services["balancer"], re.MULTILINE)
    compose = (REPO / "compose.yaml").read_text()
    assert "proxy_pass http://$$replicas:3000;" in compose
    assert re.search(r"^volumes:\n  analyst-data:\n  analyst-pg:$", compose, re.MULTILINE)


async def _check(*command: str | Path, cwd: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"{' '.join(map(str, command))} failed:\n{output.decode()[-4000:]}"


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


@pytest.mark.slow
async def test_the_image_environment_serves_over_http(
    stages: list[list[Instruction]], tmp_path: Path, env: dict[str, str], slack: FakeSlack
) -> None:
    """Stage 1 as the Dockerfile writes it (its COPYs into a build context, its pip installs into
    a virtualenv, from PyPI), stage 2's view of it (the sources gone), then `serve --http`."""
    context, venv, workdir = tmp_path / "src", tmp_path / "venv", tmp_path / "data"
    context.mkdir()
    workdir.mkdir()
    for args in _args(stages[0], "COPY"):
        *sources, destination = args.split()
        for source in sources:
            target = context / destination / source if destination.endswith("/") else context / destination
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target)
    await _check(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip = venv / "bin" / "pip"
    await _check(pip, "install", "--require-hashes", "-r", "requirements-runtime.lock", cwd=context)
    await _check(pip, "install", "--no-deps", "--no-build-isolation", ".", cwd=context)
    shutil.rmtree(context)  # the image keeps the virtualenv only

    port = free_port()
    process_env = {**env, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        venv / "bin" / "slack-analyst", "serve", "--http",
        env=process_env, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        await wait_for_line(process.stderr, LISTENING, [])
        assert await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz") == 200

        async def deliver(envelope: dict[str, Any]) -> None:
            status, _, _ = await slack.deliver_http(f"http://127.0.0.1:{port}/slack/events", envelope)
            assert status == 200

        await _mention_and_wait_for_the_answer(slack, deliver)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=90)
    assert process.returncode == 0
    # What ran was the installed package, not this checkout.
    where = await asyncio.create_subprocess_exec(
        venv / "bin" / "python", "-c", "import bot; print(bot.__file__)",
        env=process_env, cwd=workdir, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await where.communicate()
    assert Path(out.decode().strip()).is_relative_to(venv)
