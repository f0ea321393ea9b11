"""What a candidate ``regions.toml`` would change: the console's "what changes" page, without touching the running policy.

A signed-in lawyer hands in a candidate file. It is parsed and checked as
``gateway check`` does, and every point of the decision space is decided under
the running policy and under the candidate (``gateway.legal.diff``), in a child
process:

(1) the candidate is at most ``MAX_CANDIDATE_BYTES`` (413 past it);
(2) one analysis per console session at a time (409 ``analysis-running``),
    and at most ``MAX_RUNNING`` in this process (503 ``analysis-busy``): a
    diff takes seconds of one core, and the data plane keeps the other;
(3) the child (``python -m gateway.services.analysis``) gets the running
    policy and the candidate on stdin and answers JSON on stdout: the diff,
    and the candidate's own invariants proved over its decision space
    (``gateway.legal.invariants``), each with its counterexamples. It has
    ``seconds`` of wall time (killed past it: 503 ``analysis-timed-out``)
    and ``MEMORY_BYTES`` of address space; the event loop only waits;
(4) the running policy is pickled into the child and never replaced: the
    candidate exists only there, and its result is a report;
(5) the analysis is ledgered as ``policy.analysed`` (who ran it, from which
    session, the SHA-256 and size of the candidate, the running policy's
    digest, the result and its counts, how many invariants were violated) before the result is shown; a
    ledger that cannot take it means no result (503 ``ledger-unavailable``).
    Refusals before the child runs (too large, busy) are not ledgered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import AnalysisUnavailable, Conflict, PayloadTooLarge
from gateway.legal.diff import Side
from gateway.model import Caller
from gateway.services.audit_log import AuditLog

MAX_CANDIDATE_BYTES = 2 * 1024 * 1024
MAX_RUNNING = 1  # analyses at once in this process: each takes one core for seconds
MAX_GROUPS = 300  # groups the page shows, the largest changes first; `gateway policy diff` lists them all
MEMORY_BYTES = 2 * 1024**3  # the child's address space


@dataclass(frozen=True, slots=True)
class Analysis:
    """One finished analysis: the candidate's findings (invalid) or its changes against the running policy."""

    sha256: str
    size: int
    running_digest: str
    findings: list[dict[str, str]] = field(default_factory=list)
    points: int = 0
    changed: int = 0
    groups: list[dict[str, Any]] = field(default_factory=list)  # the largest MAX_GROUPS groups
    group_count: int = 0
    by_instrument: dict[str, int] = field(default_factory=dict)  # changed points per instrument, every group counted
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # "instruments" / "authorities": id -> name, both policies
    invariants: list[dict[str, Any]] = field(default_factory=list)  # the candidate's own invariants, proved over its space
    proof_points: int = 0

    @property
    def violated(self) -> int:
        return sum(1 for i in self.invariants if not i["holds"])

    @property
    def valid(self) -> bool:
        return not self.findings

    @property
    def result(self) -> str:
        return "invalid" if self.findings else "changes" if self.changed else "no-change"


class PolicyAnalysis:
    """Runs candidate policies against the running one, in a child process, bounded (see the module docstring)."""

    def __init__(self, *, running: Side, running_digest: str, audit: AuditLog, seconds: float) -> None:
        self._running = pickle.dumps(running)
        self.running_digest = running_digest
        self.audit = audit
        self.seconds = seconds
        self.sessions: set[str] = set()  # sessions with an analysis in flight

    async def analyse(self, candidate: bytes, *, caller: Caller, session: str) -> Analysis:
        """Check ``candidate`` and decide the whole space under it and the running policy; ledgered (5)."""
        # (1)
        if len(candidate) > MAX_CANDIDATE_BYTES:
            raise PayloadTooLarge(f"the candidate is {len(candidate)} bytes; the limit is {MAX_CANDIDATE_BYTES}")
        # (2)
        if session in self.sessions:
            raise Conflict("an analysis from this session is still running; wait for its result", code="analysis-running")
        if len(self.sessions) >= MAX_RUNNING:
            raise AnalysisUnavailable("another analysis is running; try again in a minute", code="analysis-busy")
        self.sessions.add(session)
        try:
            answer = await self._child(candidate)
        finally:
            self.sessions.discard(session)
        analysis = Analysis(
            sha256=hashlib.sha256(candidate).hexdigest(),
            size=len(candidate),
            running_digest=self.running_digest,
            findings=answer.get("findings", []),
            points=answer.get("points", 0),
            changed=answer.get("changed", 0),
            groups=answer.get("groups", []),
            group_count=answer.get("group_count", 0),
            by_instrument=answer.get("by_instrument", {}),
            names=answer.get("names", {}),
            invariants=answer.get("invariants", []),
            proof_points=answer.get("proof_points", 0),
        )
        # (5)
        await self.audit.record(
            "policy.analysed",
            {
                "principal": caller.principal,
                "session": session,
                "candidate_sha256": analysis.sha256,
                "candidate_bytes": analysis.size,
                "running_digest": self.running_digest,
                "result": analysis.result,
                "findings": len(analysis.findings),
                "points": analysis.points,
                "changed": analysis.changed,
                "groups": analysis.group_count,
                "invariants": len(analysis.invariants),
                "invariants_violated": analysis.violated,
            },
        )
        return analysis

    async def _child(self, candidate: bytes) -> dict[str, Any]:
        """(3) The child's answer; it is killed when it runs past ``seconds``."""
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.services.analysis",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        request = pickle.dumps((self._running, candidate))
        try:
            out, _ = await asyncio.wait_for(child.communicate(request), timeout=self.seconds)
        except TimeoutError:
            raise AnalysisUnavailable(
                f"the analysis took longer than {self.seconds:g} seconds and was stopped; nothing changed", code="analysis-timed-out"
            ) from None
        finally:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
        if child.returncode != 0:
            raise AnalysisUnavailable(f"the analysis failed (exit {child.returncode}); nothing changed", code="analysis-failed")
        try:
            answer: dict[str, Any] = json.loads(out)
        except ValueError:
            raise AnalysisUnavailable("the analysis answered nothing readable; nothing changed", code="analysis-failed") from None
        return answer


# --- the child ---------------------------------------------------------------------------


def analyse_candidate(running: Side, candidate: bytes) -> dict[str, Any]:
    """The candidate's findings, or the diff of the running policy against it, as JSON-ready data. Pure."""
    import tomllib

    from gateway.config import parse_config
    from gateway.errors import ConfigError
    from gateway.legal.diff import case_toml, diff
    from gateway.legal.invariants import prove
    from gateway.legal.invariants import to_json as proof_json

    try:
        text = candidate.decode("utf-8")
        config = parse_config(tomllib.loads(text), source="candidate")
    except UnicodeDecodeError:
        return {"findings": [{"path": "", "message": "the candidate is not UTF-8"}]}
    except tomllib.TOMLDecodeError as exc:
        return {"findings": [{"path": "", "message": f"the candidate is not valid TOML: {exc}"}]}
    except ConfigError as error:
        return {"findings": [{"path": f.path, "message": f.message} for f in error.findings]}
    except RecursionError:
        return {"findings": [{"path": "", "message": "the candidate nests too deep to read"}]}
    candidate_side = Side(config.legal, config.regions)
    result = diff(running, candidate_side)
    largest = sorted(result.groups, key=lambda g: (-g.count, g.instrument, g.issuer, g.region, g.category, g.old, g.new))[:MAX_GROUPS]
    largest.sort(key=lambda g: (g.instrument, g.issuer, g.region, g.category, g.old, g.new))
    proof = prove(candidate_side)
    policies = (running.policy, candidate_side.policy)
    by_instrument: dict[str, int] = {}
    for g in result.groups:
        by_instrument[g.instrument] = by_instrument.get(g.instrument, 0) + g.count
    return {
        "points": result.points,
        "changed": result.changed,
        "group_count": len(result.groups),
        "by_instrument": dict(sorted(by_instrument.items())),
        "groups": [
            {
                "instrument": g.instrument,
                "issuer": g.issuer,
                "region": g.region,
                "category": g.category,
                "old": g.old,
                "new": g.new,
                "count": g.count,
                "example": g.classes[0],
                "case": case_toml(g),
            }
            for g in largest
        ],
        "proof_points": proof.points,
        "invariants": proof_json(proof)["invariants"],
        "names": {
            "instruments": {i.id: i.name for p in policies for i in p.instruments.values()},
            "authorities": {a.id: a.name for p in policies for a in p.authorities.values()},
        },
    }


def _main() -> None:
    """The child: a pickled (running side, candidate) on stdin, the JSON answer on stdout."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    running, candidate = pickle.loads(sys.stdin.buffer.read())
    answer = analyse_candidate(pickle.loads(running), candidate)
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    _main()
