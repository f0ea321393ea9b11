"""moto's S3 server answering one request at a time, so that a conditional write is decided in one step, as S3 decides it.

moto's own servers (`moto_server`, `ThreadedMotoServer`) answer each request on
a thread of its own and check `If-Match` / `If-None-Match` before they write,
without a lock: two conditional writes of one key arriving together can both
pass the check. S3 decides a conditional write atomically, and the gateway's
compare-and-swap relies on it. Served from one thread, moto does the same; a
test of replicas racing conditional writes runs against this.

    python -m tests.faults.serial_moto HOST PORT
"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def main(host: str, port: int) -> None:
    app = DomainDispatcherApplication(create_backend_app)
    make_server(host, port, app, threaded=False, request_handler=MotoRequestHandler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
