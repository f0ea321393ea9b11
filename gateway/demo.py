"""Demo data: one subject per region with a record of every category."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from gateway.config import Config
from gateway.keys import load_private_key, resolve
from gateway.legal.verify import sign_order
from gateway.model import Caller, Subject
from gateway.services.records import RecordService


def demo_loader(region: str) -> Caller:
    """The demo's data loader in ``region``: a subject's data is written from its home region, as every write is decided like a read."""
    return Caller(principal="demo-loader", role="service", service="demo-loader", region=region, purpose="demo")


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
    """Register the demo subjects and write the records they do not have yet; returns records written.

    A record already there is left as it is: a record the tour put under a
    legal hold (the preservation order) cannot be written again, and the demo
    must start again on its own data.
    """
    written = 0
    for subject_id, region, residence, nationality, us_person, location in DEMO_SUBJECTS:
        if region not in records.config.local_regions:  # a peer's region: its own gateway seeds it
            continue
        subject = Subject(subject_id, region, residence, nationality, us_person, location)
        loader = demo_loader(region)
        await records.register_subject(loader, subject)
        present = {meta.key for meta in (await records.list_records(loader, subject_id)).records}
        for key, category, template in DEMO_RECORDS:
            if category not in records.config.rank or key in present:
                continue
            await records.put_record(loader, subject_id, key, category, template.format(subject=subject_id).encode())
            written += 1
    return written


# (file name, signing authority, claims) for example orders the demo signs as its demo authorities.
DEMO_ORDERS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("us-warrant-alice", "us-court-sdny", {"iss": "us-court-sdny", "instrument": "us.warrant", "subjects": ["alice"], "categories": ["content"]}),
    ("us-warrant-aoife", "us-court-sdny", {"iss": "us-court-sdny", "instrument": "us.warrant", "subjects": ["aoife"], "categories": ["content"]}),
    ("us-preservation-mia", "us-fbi", {"iss": "us-fbi", "instrument": "us.preservation", "subjects": ["mia"], "categories": ["content"]}),
    ("fr-epoc-klaus", "fr-prosecutor", {"iss": "fr-prosecutor", "instrument": "eu.epoc", "subjects": ["klaus"], "categories": ["subscriber"]}),
    (
        "gb-opo-alice",
        "gb-sos",
        {
            "iss": "gb-court",
            "instrument": "gb.opo",
            "subjects": ["alice"],
            "categories": ["content"],
            "offence": {"description": "terrorism", "max_penalty_years": 14, "committed_in": "GB"},
        },
    ),
    ("br-court-order-alice", "br-court", {"iss": "br-court", "instrument": "br.court-order", "subjects": ["alice"], "categories": ["content"]}),
)


def write_demo_orders(config: Config, data_dir: Path, now: datetime) -> dict[str, tuple[Path, str]]:
    """Sign the example orders as the demo authorities; returns {name: (file, order id)}."""
    folder = data_dir / "demo-orders"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%d%H%M%S")
    written: dict[str, tuple[Path, str]] = {}
    for name, kid, claims in DEMO_ORDERS:
        authority = config.legal.authorities.get(kid)
        if authority is None or claims["instrument"] not in config.legal.instruments:
            continue
        key = load_private_key(resolve(data_dir, authority.public_key).with_suffix(".key"))
        body = {
            "jti": f"{name}-{stamp}",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(days=30)).timestamp()),
            **claims,
        }
        if claims["instrument"] == "gb.opo":
            body["made_at"] = int((now - timedelta(days=7)).timestamp())
        path = folder / f"{name}.jws"
        path.write_text(sign_order(body, key=key, kid=kid) + "\n")
        written[name] = (path, str(body["jti"]))
    return written
