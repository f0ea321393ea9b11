"""Fixtures shared by every test package."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import settings

# Tests assert behaviour, never time: Hypothesis's per-example deadline is a timing
# assertion that fails property tests on a busy machine, so it is off everywhere.
settings.register_profile("gateway", deadline=None)
settings.load_profile("gateway")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave the root logger as each test found it: a command run in-process (``gateway serve``) installs a
    handler on the stdout that pytest captured for that test, and a later test's log lines would go to it closed."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials, so boto3 never finds real ones."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    # S3 clients share one boto3 session per process. One made before moto was first imported lacks
    # moto's hook, so its clients would go to the real AWS under mock_aws: give each test a fresh one.
    monkeypatch.setattr("gateway.s3client._SESSION", [])


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    """An in-process moto S3 (``mock_aws``) with fake credentials."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real S3 HTTP endpoint (moto's threaded server) on a free loopback port: its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


# The S3 conformance suite's pass counts per target (tests/s3conformance), kept here, in the conftest every
# pytest process loads, so that the controller of a pytest-xdist run counts the reports and prints them.
_outcomes: dict[str, Counter[str]] = {name: Counter() for name in ("moto", "front")}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/s3conformance/" not in report.nodeid or not report.nodeid.endswith("]"):
        return
    name = report.nodeid.rsplit("[", 1)[1].rstrip("]")
    if name not in _outcomes:
        return
    if report.when == "call":
        _outcomes[name]["xfailed" if report.outcome == "skipped" and hasattr(report, "wasxfail") else report.outcome] += 1
        if report.outcome == "passed" and hasattr(report, "wasxfail"):
            _outcomes[name]["xpassed"] += 1
    elif report.when == "setup" and report.outcome != "passed":
        _outcomes[name][report.outcome] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    if not any(_outcomes.values()):
        return
    terminalreporter.section("S3 conformance")
    for name, counts in _outcomes.items():
        ran = sum(v for k, v in counts.items() if k != "xpassed")
        terminalreporter.write_line(
            f"{name:6} {counts['passed']:3d}/{ran} passed ({counts['xpassed']} of them listed as differing), "
            f"{counts['xfailed']} known to differ, {counts['failed']} failed, {counts['skipped']} skipped"
        )
