"""Demo data: one subject per region with a record of every category."""

from __future__ import annotations

from gateway.model import Caller, Subject
from gateway.services.records import RecordService

DEMO_SERVICE = Caller(principal="demo-loader", role="service", service="demo-loader", region="us-east-1", purpose="demo")

# (subject, home region, residence, nationality, us_person, location)
DEMO_SUBJECTS: tuple[tuple[str, str, str, str, bool, str], ...] = (
    ("alice", "us-east-1", "US", "US", True, "US"),
    ("aoife", "eu-west-1", "IE", "IE", False, "IE"),
    ("klaus", "eu-central-1", "DE", "DE", False, "DE"),
    ("oliver", "eu-west-2", "GB", "GB", False, "GB"),
    ("mia", "ap-southeast-2", "AU", "AU", False, "AU"),
)

DEMO_RECORDS: tuple[tuple[str, str, str], ...] = (
    ("profile", "subscriber", '{{"name": "{subject}", "plan": "pro"}}'),
    ("login-ips", "identification", '{{"ip": "203.0.113.7", "port": 51514, "at": "2026-09-30T08:00:00Z"}}'),
    ("call-log", "traffic", '{{"to": "+0000000000", "duration_s": 62}}'),
    ("inbox-0001", "content", "Subject: hello {subject}\n\nThis is demo mail content.\n"),
)


async def seed(records: RecordService) -> int:
    """Register the demo subjects and write their records; idempotent. Returns records written."""
    written = 0
    for subject_id, region, residence, nationality, us_person, location in DEMO_SUBJECTS:
        if region not in records.config.regions:
            continue
        subject = Subject(subject_id, region, residence, nationality, us_person, location)
        await records.register_subject(DEMO_SERVICE, subject)
        for key, category, template in DEMO_RECORDS:
            if category not in records.config.rank:
                continue
            await records.put_record(DEMO_SERVICE, subject_id, key, category, template.format(subject=subject_id).encode())
            written += 1
    return written
