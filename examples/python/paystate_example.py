"""A paystate client in Python (nats-py), written only from the README and schemas/:
create an order, start its payment, wait for the customer to authorize it, capture it,
refund it, and show that a retried command has the effect of once.

Commands are JSON (schemas/command.schema.json) sent on the fast path (README: Sending
commands): a core NATS request to `paystate.rpc.cmd.<partition>.<order_id>`, partition =
FNV-1a 64 of the order id modulo 64; the reply is the outcome (schemas/outcome.schema.json).
The same bytes are sent again on "no responders" (backing off 50 ms doubling to 1 s), on a
timeout and on a 503 service error, until OUTCOME_WAIT_S runs out. With --queue the command
is JetStream-published to `paystate.cmd.<order_id>` with header `Paystate-Reply-To: <our
_INBOX. subject>` instead (stored even while no engine runs) and the outcome arrives on that
inbox; if it does not arrive in time the same command is published again. The order's
progress at the provider is read from the private HTTP API (`GET /orders/{id}`, a `read` key).

Usage (see README.md beside this file):
    PYTHONPATH=.tools/python python3 examples/python/paystate_example.py \
        --order demo-1 --api http://127.0.0.1:8081 --key psk_...
"""

import argparse
import asyncio
import datetime
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

import nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

REPLY_HEADER = "Paystate-Reply-To"
# The fast path: `paystate.rpc.<plane>.<partition>.<order_id>`, 64 partitions by FNV-1a 64.
RPC_PREFIX = "paystate.rpc"
RPC_PARTITIONS = 64
FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
SERVICE_ERROR_CODE_HEADER = "Nats-Service-Error-Code"
SERVICE_ERROR_HEADER = "Nats-Service-Error"
# Retry rule: back off on "no responders" and 503, doubling up to the maximum; one attempt
# waits at most ATTEMPT_TIMEOUT_S for its reply.
RETRY_BACKOFF_FIRST_S = 0.05
RETRY_BACKOFF_MAX_S = 1.0
ATTEMPT_TIMEOUT_S = 2.0
# Bounds: how long one outcome is waited for, how often a command is published at most,
# how long the order may take to reach a state at the provider, how often it is polled.
OUTCOME_WAIT_S = 10.0
PUBLISH_ATTEMPTS_MAX = 3
STATE_WAIT_S = 60.0
POLL_INTERVAL_S = 0.2


class Rejected(Exception):
    """paystate refused a command: `code` is one of README's stable rejection codes."""

    def __init__(self, outcome):
        super().__init__(f"{outcome.get('code')}: {outcome.get('message')}")
        self.code = outcome.get("code")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def usd(minor_units):
    return {"minor_units": minor_units, "currency": "USD"}


def rpc_subject(plane, order_id):
    """The fast-path subject: FNV-1a 64 of the order id's bytes, modulo 64, picks the partition."""
    h = FNV_OFFSET_BASIS
    for b in order_id.encode():
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{RPC_PREFIX}.{plane}.{h % RPC_PARTITIONS}.{order_id}"


assert rpc_subject("cmd", "o-1") == "paystate.rpc.cmd.40.o-1"  # README's worked example


class Paystate:
    """Sends commands and waits for their outcomes on one reply inbox."""

    def __init__(self, nc, api, key, queue=False):
        self.nc = nc
        self.queue = queue
        self.js = nc.jetstream()
        self.api = api.rstrip("/")
        self.key = key
        self.inbox = nc.new_inbox()  # `_INBOX.<random>`: the engine replies only below `_INBOX.`
        self.sub = None

    async def start(self):
        self.sub = await self.nc.subscribe(self.inbox)

    async def send(self, order_id, command_type, command_id=None, **fields):
        """Sends a command and returns its accepted outcome; raises Rejected."""
        command = {
            "command_id": command_id or str(uuid.uuid4()),
            "order_id": order_id,
            "issued_at": now_rfc3339(),
            "type": command_type,
            **fields,
        }
        body = json.dumps(command).encode()
        if self.queue:
            outcome = await self._send_queued(order_id, command["command_id"], body)
        else:
            outcome = await self._request(order_id, body)
        if outcome.get("outcome") != "accepted":
            raise Rejected(outcome)
        return outcome

    async def _request(self, order_id, body):
        """The fast path, with the retry rule: always the same bytes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OUTCOME_WAIT_S
        backoff = RETRY_BACKOFF_FIRST_S
        subject = rpc_subject("cmd", order_id)
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no outcome in {OUTCOME_WAIT_S} s (retrying later is safe)")
            try:
                msg = await self.nc.request(subject, body, timeout=min(left, ATTEMPT_TIMEOUT_S))
            except NoRespondersError:
                # No engine serves the partition right now (starting, or a hand-over).
                msg = None
            except NatsTimeout:
                continue  # maybe committed: the retry is answered from the log
            code = (msg.headers or {}).get(SERVICE_ERROR_CODE_HEADER) if msg else "none"
            if code is None:
                return json.loads(msg.data)
            if code not in ("none", "503"):
                raise RuntimeError(f"paystate refused the request ({code}): {msg.headers.get(SERVICE_ERROR_HEADER)}")
            await asyncio.sleep(max(0.0, min(backoff, deadline - loop.time())))
            backoff = min(backoff * 2, RETRY_BACKOFF_MAX_S)

    async def _send_queued(self, order_id, command_id, body):
        """The queue path: a durable publish with a reply header, republished if no outcome."""
        for _ in range(PUBLISH_ATTEMPTS_MAX):
            # The publish ack means the command is stored: it will be processed even if no
            # engine runs right now. A retry with the same command_id has the effect of once.
            await self.js.publish(
                f"paystate.cmd.{order_id}", body, headers={REPLY_HEADER: self.inbox}
            )
            outcome = await self._outcome(command_id)
            if outcome is not None:
                return outcome
        raise TimeoutError(f"no outcome after {PUBLISH_ATTEMPTS_MAX} publishes (retrying later is safe)")

    async def _outcome(self, command_id):
        """The outcome for `command_id` from our inbox, or None after OUTCOME_WAIT_S."""
        deadline = asyncio.get_running_loop().time() + OUTCOME_WAIT_S
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            try:
                msg = await self.sub.next_msg(timeout=left)
            except NatsTimeout:
                return None
            outcome = json.loads(msg.data)
            if outcome.get("command_id") == command_id:
                return outcome  # outcomes of earlier attempts are skipped

    def order(self, order_id):
        """`GET /orders/{id}` from the private API, or None while the projection lacks it."""
        req = urllib.request.Request(
            f"{self.api}/orders/{order_id}",
            headers={"Authorization": f"Bearer {self.key}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=OUTCOME_WAIT_S) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    async def wait_for(self, order_id, what, predicate):
        """Polls the order until `predicate(order)` holds (bounded by STATE_WAIT_S)."""
        deadline = asyncio.get_running_loop().time() + STATE_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            order = await asyncio.to_thread(self.order, order_id)
            if order is not None and predicate(order):
                return order
            await asyncio.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"order {order_id} did not become {what} in {STATE_WAIT_S} s")


async def run(args):
    options = {"servers": [args.nats]}
    if args.user:
        options.update(user=args.user, password=args.password)
    nc = await nats.connect(**options)
    try:
        ps = Paystate(nc, args.api, args.key, queue=args.queue)
        await ps.start()
        order = args.order
        amount = 10_000

        created = await ps.send(
            order, "create_order",
            command_id=f"{order}.create",
            merchant_reference=f"py-{order}",
            amount=usd(amount),
            provider=args.provider,
            capture_mode="manual",
        )
        print(f"created {order}: commit {created['commit']}, {created['state']['status']}")

        await ps.send(order, "start_payment", command_id=f"{order}.start")
        pending = await ps.wait_for(
            order, "shown to the customer", lambda o: o.get("customer_action") or o["status"] != "pending"
        )
        action = pending.get("customer_action") or {}
        print(f"customer action: {action.get('kind')} {action.get('url', '')}".rstrip())

        await ps.wait_for(order, "authorized", lambda o: o["status"] == "authorized")
        print("authorized")

        capture = await ps.send(order, "capture", command_id=f"{order}.capture")
        again = await ps.send(order, "capture", command_id=f"{order}.capture")
        assert again["duplicate"] and again["commit"] == capture["commit"], again
        print(f"capture requested (commit {capture['commit']}; the retry was a duplicate)")
        await ps.wait_for(order, "captured", lambda o: o["status"] == "captured")
        print("captured")

        try:
            await ps.send(order, "refund", command_id=f"{order}.too-much", amount=usd(amount + 1))
            raise AssertionError("a refund above the captured amount was accepted")
        except Rejected as r:
            print(f"refund of {amount + 1} refused: {r.code}")

        await ps.send(order, "refund", command_id=f"{order}.refund", amount=usd(amount))
        done = await ps.wait_for(order, "returned", lambda o: o["status"] == "returned")
        print(f"refunded: {done['status']}, refunded {done['refunded']['decimal']} USD")
    finally:
        await nc.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--order", default=f"py-{uuid.uuid4().hex[:8]}", help="order id to create")
    p.add_argument("--provider", default="plexy", help="a provider with manual capture and refunds")
    p.add_argument("--nats", default=os.environ.get("PAYSTATE_NATS_URL", "nats://127.0.0.1:4222"))
    # The same variables `paystate` reads (README: settings), so one shell serves both.
    p.add_argument("--user", default=os.environ.get("PAYSTATE_NATS__USER"))
    p.add_argument("--password", default=os.environ.get("PAYSTATE_NATS__PASSWORD"))
    p.add_argument("--api", default=os.environ.get("PAYSTATE_API_URL", "http://127.0.0.1:8081"))
    p.add_argument("--key", default=os.environ.get("PAYSTATE_API_KEY"), help="a read key")
    p.add_argument("--queue", action="store_true", help="send through the durable command queue")
    args = p.parse_args()
    if not args.key:
        p.error("--key (or PAYSTATE_API_KEY) is required: `paystate apikey new --scope read`")
    try:
        asyncio.run(run(args))
    except Rejected as r:
        print(f"rejected: {r}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
