"""The guides' shell blocks run as written, in order, against a fresh server.

Covered: the README's five-minute walk-through, the OTP guide's flow and the
administration guide's first admin (README.md, docs/otp.md, docs/admin.md). Every
```sh block of those sections runs in one bash (``set -eo pipefail``), from the project
directory, as a reader would paste them; the one block that starts the server
(``make run``) is this test's own server instead, started the way ``make run`` starts it
and the way the OTP guide asks (``AUTHSERVER_OTP_EXPOSE_CODE=true``). The only rewrite
is the port: ``127.0.0.1:8000`` becomes this server's, so the suite never takes the
port a developer's server may hold.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# (file, heading of the section whose blocks run), in the order a reader follows them.
SECTIONS = (
    ("README.md", "## Five minutes with curl"),
    ("docs/otp.md", "## The flow with curl"),
    ("docs/admin.md", "## Creating the first admin"),
    ("docs/browser-sign-in.md", "## In three steps"),
)
BLOCK = re.compile(r"^[ \t]*```sh\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
SERVER_BLOCK = "make run"


def section(path: str, heading: str) -> str:
    text = (ROOT / path).read_text()
    assert heading in text, f"{path} lost its section {heading!r}"
    body = text.split(heading, 1)[1]
    level = heading.split()[0]
    following = re.search(rf"^{level} ", body, re.MULTILINE)
    return body[: following.start()] if following else body


def blocks(path: str, heading: str) -> list[str]:
    found = []
    for match in BLOCK.finditer(section(path, heading)):
        lines = match.group(1).splitlines()
        indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
        found.append("\n".join(line[indent:] for line in lines).strip())
    assert found, f"no ```sh block in {path}, {heading!r}"
    return found


def walkthrough_script(port: int) -> str:
    steps = ["set -eo pipefail"]
    for path, heading in SECTIONS:
        for code in blocks(path, heading):
            if code == SERVER_BLOCK:
                continue  # the server this test started
            steps.append(f"echo '### {path}, {heading}' >&2")
            steps.append(code.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    return "\n".join(steps) + "\n"


@pytest.fixture
def fresh_server(tmp_path) -> Iterator[tuple[int, dict[str, str]]]:
    """As `make run` starts it, on its own instance directory and port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update(
        AUTHSERVER_INSTANCE_DIR=str(tmp_path / "instance"),
        AUTHSERVER_ISSUER=f"http://127.0.0.1:{port}",
        AUTHSERVER_OTP_EXPOSE_CODE="true",
    )
    for step in (["db", "upgrade"], ["keys", "ensure"]):
        subprocess.run([str(BIN / "authserver"), *step], env=env, check=True, cwd=ROOT,
                       capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [str(BIN / "authserver"), "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(
            f"http://127.0.0.1:{port}", still_running=lambda: server.poll() is None, timeout=60
        )
        yield port, env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_walkthrough_otp_and_first_admin_run_as_written(fresh_server, tmp_path):
    port, env = fresh_server
    script = tmp_path / "walkthrough.sh"
    script.write_text(walkthrough_script(port))
    # The reader's shell: the project directory, no virtualenv active yet.
    shell_env = {**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin").replace(f"{BIN}:", "")}
    shell_env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["bash", str(script)], cwd=ROOT, env=shell_env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stderr[-4000:]}\n--- stdout ---\n{done.stdout[-2000:]}"
    out = done.stdout.replace(" ", "")
    assert '"active":false' in out  # the revoked session's token, introspected
    assert '"password_reset":true' in out
    assert "authserver.admin" in out  # the first admin's permissions, read back
    # The web app registered in one line, and the discovery document a library reads.
    assert '"redirect_uris":["https://tenants.example.com/callback"]' in out
    assert f'"authorization_endpoint":"http://127.0.0.1:{port}/oauth/authorize"' in out


def test_every_section_has_blocks_and_the_server_block_is_the_only_skip():
    skipped = [
        code for path, heading in SECTIONS for code in blocks(path, heading) if code == SERVER_BLOCK
    ]
    assert skipped == ["make run"]  # the README's; the guides start no server of their own
