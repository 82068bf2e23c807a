"""A moto server (with localaws.doubles.aws_behaviour()) in a child process, for the memory figure.

tracemalloc traces every allocation of its process, moto's included: an in-process moto (mock_aws
or ThreadedMotoServer) holds and copies each object body it serves, which would be counted as
the reader's memory. In a child process only the code under test's memory is traced.

    python -m bench.motoserver      # prints {"endpoint": "http://127.0.0.1:<port>"}; stops when stdin closes
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench import ROOT


def serve() -> None:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    from localaws.doubles import aws_behaviour  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with aws_behaviour():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        print(json.dumps({"endpoint": f"http://{host}:{port}"}), flush=True)
        try:
            sys.stdin.read()  # until the parent closes our stdin
        finally:
            server.stop()


@contextmanager
def child_server() -> Iterator[str]:
    """Start ``python -m bench.motoserver``; yield its endpoint; stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.motoserver"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the moto server child did not start")
        yield str(json.loads(line)["endpoint"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    serve()
