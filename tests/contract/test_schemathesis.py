"""Schemathesis drives a real gateway process from its own `/openapi.json`, once per role and once with no token.

Four checks, on every response: no 5xx (`not_a_server_error`), every status
documented (`status_code_conformance`), every Content-Type documented
(`content_type_conformance`), and every body valid against its schema
(`response_schema_conformance`). Generation covers the schema's examples, its
boundaries (the coverage phase: each constraint just met and just missed) and
random fuzzing, with a fixed seed so a failure repeats.

CI runs a bounded campaign: ``SCHEMATHESIS_EXAMPLES`` (20) cases per
operation and phase, about 900 cases per role. A long one, with a new seed
each time::

    SCHEMATHESIS_EXAMPLES=1000 SCHEMATHESIS_SEED=random .venv/bin/python -m pytest tests/contract
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.model import Caller
from tests.faults.harness import GatewayProcess, Workdir, running
from tests.support import ROOT

ST = Path(sys.executable).with_name("st")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261203")
# what the schema's examples name (gateway.web.contract), so the examples phase reaches a stored record
SUBJECT, KEY, CATEGORY, REGION = "cust-1042", "invoice-2026-11.json", "subscriber", "eu-west-1"
CALLERS = {
    "service": Caller("billing", "service", service="billing", region=REGION, purpose="billing"),
    "intake": Caller("ines", "intake"),
    "legal": Caller("lena", "legal"),
    "ops": Caller("otto", "ops"),
    "support": Caller("sam", "support"),
    "no token": None,
}


def _request(url: str, method: str, token: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Workdir]]:
    workdir = Workdir.make(tmp_path_factory.mktemp("contract"))
    with running(GatewayProcess(workdir).wait_ready()) as process:
        token = workdir.token(CALLERS["service"])  # type: ignore[arg-type]
        subject = f'{{"home_region": "{REGION}", "residence": "IE"}}'.encode()
        assert _request(f"{process.url}/v1/subjects/{SUBJECT}", "PUT", token, subject, "application/json") == 201
        record = f"{process.url}/v1/subjects/{SUBJECT}/records/{KEY}?category={CATEGORY}"
        assert _request(record, "PUT", token, b'{"amount": 42}', "application/octet-stream") == 201
        yield process, workdir


@pytest.mark.parametrize("role", list(CALLERS))
def test_schemathesis_finds_no_contract_violation_for_a_caller(gateway: tuple[GatewayProcess, Workdir], role: str) -> None:
    process, workdir = gateway
    caller = CALLERS[role]
    seed = str(random.randrange(2**32)) if SEED == "random" else SEED
    command = [str(ST), "run", f"{process.url}/openapi.json", "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", seed]
    command += ["--phases", "examples,coverage,fuzzing", "--workers", "1", "--warnings", "off", "--output-truncate", "true"]
    if caller is not None:
        command += ["--header", f"Authorization: Bearer {workdir.token(caller)}"]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract.schemathesis_hooks", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    result = subprocess.run(command, cwd=workdir.root, env=environment, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    (workdir.root / f"schemathesis-{role.replace(' ', '-')}.txt").write_text(output)
    generated = re.search(r"(\d+) generated", output)
    assert result.returncode == 0, f"schemathesis (seed {seed}) found problems:\n{output[-6000:]}"
    assert generated is not None and int(generated.group(1)) > 0, output[-2000:]
