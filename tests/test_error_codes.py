"""Every error code the gateway can answer or print is listed in README's error-code table.

The codes are read from the source as written (``code="..."``, ``code = "..."``,
the console's error pages, order refusals, the codes the problem middleware
gives aiohttp's own errors), so a new code without a line in the README fails here.
"""

from __future__ import annotations

import re

from tests.support import ROOT

PATTERNS = (
    re.compile(r'\bcode\s*=\s*"([a-z0-9]+(?:-[a-z0-9]+)*)"'),
    re.compile(r'_error_page\(\s*request,\s*\d+,\s*"([a-z0-9-]+)"'),
    re.compile(r'_reject\(\s*"([a-z0-9-]+)"'),
    re.compile(r'\d{3}: "([a-z0-9-]+)"'),  # the problem middleware's codes for aiohttp's 404, 405, 413
)
START = "**Error codes.**"


def _codes_in_source() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            found.update(pattern.findall(text))
    return found - {"http-error"}  # the fallback for an aiohttp status the middleware has no name for (none is raised)


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(START)
    end = text.index("\n\n", text.index("\n\n", text.index("| 503 |", start)) + 2)
    return text[start:end]


def test_every_error_code_in_the_source_is_in_the_readmes_table() -> None:
    section = _readme_section()
    missing = sorted(code for code in _codes_in_source() if f"`{code}`" not in section)
    assert missing == [], f"add these codes to README's error-code table: {missing}"


def test_the_source_scan_finds_the_codes_it_is_meant_to_find() -> None:
    assert {"residency-refused", "csrf-invalid", "bad-signature", "method-not-allowed", "write-conflict"} <= _codes_in_source()
