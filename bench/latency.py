"""Figure 2: handler wall time per compliant object event ÷ one bare HeadObject, both against the
same moto server over loopback HTTP (``moto.server.ThreadedMotoServer`` on 127.0.0.1, in this
process, with ``localaws.doubles.aws_behaviour()``), both through a boto3 client built the way
``clguard.adapters.clients`` builds its own (same botocore Config, AWS_ENDPOINT_URL).

Warm container: a first batch warms clients, connections and the key cache; then several rounds,
each timing the handler on the batch and the same number of bare HeadObject calls back to back
(alternating which goes first); the figure is median(handler per event) ÷ median(head per call).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from bench.calls import BATCH, compliant_world, run_verify
from bench.common import Figure, chunks, environment, fresh_container, median, progress
from clguard.adapters import clients
from localaws.doubles import aws_behaviour
from tests.awscalls import boundary
from tests.eventsamples import sqs_event
from tests.world import BUCKET, World

ROUNDS = 7


def reset_moto(endpoint: str) -> None:
    """moto's own reset endpoint: every backend empty (the server shares this process's state)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our loopback moto server
        response.read()


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def handler_vs_head(count: int = BATCH, rounds: int = ROUNDS) -> list[Figure]:
    progress(f"figure 2: handler vs bare HeadObject, moto server on loopback, {rounds} rounds of {count} events")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with environment(AWS_ENDPOINT_URL=endpoint), aws_behaviour():
            reset_moto(endpoint)
            fresh_container()
            world, keys, _answers = compliant_world(count)
            works = [World.object_created(k) for k in keys]
            batch = sqs_event(*works)
            batches_of_10 = [sqs_event(*part) for part in chunks(works, 10)]
            singles = [sqs_event(w) for w in works]
            bare = boto3.session.Session().client("s3", config=clients.CONFIG)

            def heads() -> None:
                for key in keys:
                    bare.head_object(Bucket=BUCKET, Key=key)

            def batch100() -> None:
                run_verify(batch)

            def batch10() -> None:
                for event in batches_of_10:
                    run_verify(event)

            def batch1() -> None:
                for event in singles:
                    run_verify(event)

            with boundary() as b:
                fresh_container(b.session)
                batch100()  # warm-up: clients, connection pools, key directory (TTL 60 s)
                heads()
                b.log.clear()
                samples: dict[str, list[float]] = {"head": [], "batch100": [], "batch10": [], "batch1": []}
                for n in range(rounds):
                    order = [("batch100", batch100), ("head", heads), ("batch10", batch10), ("batch1", batch1)]
                    if n % 2:
                        order.reverse()
                    for name, action in order:
                        samples[name].append(timed(action) / count)
                calls = b.log.count()
            published = len(world.published())
            fresh_container()
            reset_moto(endpoint)
    finally:
        server.stop()
        clients.reset()
    if published:
        raise RuntimeError(f"compliant objects published {published} findings")
    head = median(samples["head"])
    per = {name: median(values) for name, values in samples.items()}
    ms = {name: round(value * 1000, 3) for name, value in per.items()}
    handler_calls_per_event = calls / (rounds * 3 * count)
    data = {
        "endpoint": "127.0.0.1 (ThreadedMotoServer, in process)",
        "rounds": rounds,
        "events_per_round": count,
        "median_ms_per_event": ms,
        "samples_ms": {name: [round(v * 1000, 3) for v in values] for name, values in samples.items()},
        "handler_calls_per_event_measured_rounds": round(handler_calls_per_event, 4),
    }
    main = per["batch100"] / head
    figures = [
        Figure(
            "handler_vs_head",
            f"Handler wall time per compliant object event (warm, batch of {count}) ÷ one bare HeadObject "
            "(moto server, loopback HTTP)",
            main,
            f"{main:.2f}",
            1.5,
            "≤ 1.5",
            detail=f"median of {rounds} rounds: handler {ms['batch100']:.2f} ms/event, bare HeadObject "
            f"{ms['head']:.2f} ms/call; handler calls {handler_calls_per_event:.2f}/event",
            data=data,
        )
    ]
    for name, label in (("batch10", "batch of 10 (SQS default)"), ("batch1", "one event per invocation")):
        ratio = per[name] / head
        figures.append(
            Figure(
                f"handler_vs_head_{name}",
                f"Handler wall time per event ÷ bare HeadObject, {label}",
                ratio,
                f"{ratio:.2f}",
                detail=f"handler {ms[name]:.2f} ms/event vs HeadObject {ms['head']:.2f} ms (same rounds)",
                data={"median_ms_per_event": ms[name], "median_ms_head": ms["head"]},
            )
        )
    return figures
