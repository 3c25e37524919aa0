"""Independent ingest load for LockerFleet: locust users as cabinets over mutual-TLS MQTT.

Each user is one device with its own client certificate. It publishes event batches
(PROTOCOL.md, `devices/{id}/events`, QoS 1) and counts an event as done only when the
server's receipt (`devices/{id}/receipts`, "every seq <= up_to is durably stored") covers it,
so locust's figures are durable-storage figures, not PUBACKs. Written from PROTOCOL.md alone,
with paho-mqtt, so that the measurement does not depend on our own simulator's client code.

Run by `fleet-sim bench locust` (which starts the server and issues the certificates), or
by hand with the environment below:

    LF_HOST, LF_PORT     the server's MQTT/TLS address
    LF_CERTS             folder with ca.crt and DEVICE.crt / DEVICE.key per device
    LF_PREFIX, LF_COUNT  devices LF_PREFIX-00000 .. LF_PREFIX-(LF_COUNT-1), one per user
    LF_WINDOW            events published and not yet receipted, per device (default 20)
    LF_BATCH             events per message (default 1)
    LF_PROCESSES         locust worker processes (`--processes`), to split the devices
"""

import itertools
import json
import os
import ssl
import threading
import time

import gevent
import paho.mqtt.client as mqtt
from locust import User, events, task

HOST = os.environ.get("LF_HOST", "127.0.0.1")
PORT = int(os.environ.get("LF_PORT", "8883"))
CERTS = os.environ.get("LF_CERTS", "certs")
PREFIX = os.environ.get("LF_PREFIX", "locust")
COUNT = int(os.environ.get("LF_COUNT", "50"))
WINDOW = int(os.environ.get("LF_WINDOW", "20"))
BATCH = int(os.environ.get("LF_BATCH", "1"))
PROCESSES = int(os.environ.get("LF_PROCESSES", "1"))

_next_device = itertools.count()
_next_lock = threading.Lock()


def _device_id(runner):
    """A device of its own for every user, also across `--processes` workers: worker w of
    LF_PROCESSES takes devices w, w + LF_PROCESSES, ..."""
    with _next_lock:
        local = next(_next_device)
    worker = getattr(runner, "worker_index", 0) or 0
    n = local * PROCESSES + worker
    if n >= COUNT:
        raise RuntimeError(f"more locust users than devices with certificates ({COUNT})")
    return f"{PREFIX}-{n:05d}"


def _batch(first, last):
    return json.dumps({
        "v": 1,
        "base": first,
        "events": [
            {"seq": s, "ts": int(time.time() * 1000), "type": "door",
             "box": s % 24 + 1, "open": s % 2 == 0}
            for s in range(first, last + 1)
        ],
    }).encode()


class Cabinet(User):
    """One cabinet: a window of un-receipted events, each timed from publish to receipt."""

    def on_start(self):
        self.device = _device_id(self.environment.runner)
        self.last = 0          # last seq published
        self.receipted = 0     # highest receipt
        self.sent_at = {}      # seq -> publish time
        self.connected = gevent.event.Event()
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=f"{CERTS}/ca.crt")
        ctx.load_cert_chain(f"{CERTS}/{self.device}.crt", f"{CERTS}/{self.device}.key")
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.device,
                        protocol=mqtt.MQTTv311)
        c.tls_set_context(ctx)
        c.tls_insecure_set(False)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.max_inflight_messages_set(WINDOW)
        self.client = c
        started = time.time()
        # The server certificate is issued for localhost.
        c.connect("localhost" if HOST in ("127.0.0.1", "::1") else HOST, PORT, keepalive=60)
        c.loop_start()
        if not self.connected.wait(timeout=30):
            events.request.fire(request_type="MQTT", name="connect", response_time=30000,
                                response_length=0, exception=TimeoutError("no CONNACK"))
            raise RuntimeError(f"{self.device}: no CONNACK within 30 s")
        events.request.fire(request_type="MQTT", name="connect",
                            response_time=(time.time() - started) * 1000, response_length=0,
                            exception=None)

    def on_stop(self):
        self.client.loop_stop()
        self.client.disconnect()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code == 0:
            client.subscribe(f"devices/{self.device}/receipts", qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, msg):
        try:
            up_to = int(json.loads(msg.payload)["up_to"])
        except (ValueError, KeyError, TypeError) as e:
            events.request.fire(request_type="MQTT", name="receipt", response_time=0,
                                response_length=len(msg.payload), exception=e)
            return
        now = time.time()
        for seq in range(self.receipted + 1, up_to + 1):
            at = self.sent_at.pop(seq, None)
            if at is not None:
                events.request.fire(request_type="MQTT", name="event stored (publish → receipt)",
                                    response_time=(now - at) * 1000, response_length=0,
                                    exception=None)
        self.receipted = max(self.receipted, up_to)

    @task
    def publish(self):
        if self.last - self.receipted + BATCH > WINDOW:
            gevent.sleep(0.0005)
            return
        first, last = self.last + 1, self.last + BATCH
        now = time.time()
        for seq in range(first, last + 1):
            self.sent_at[seq] = now
        self.last = last
        self.client.publish(f"devices/{self.device}/events", _batch(first, last), qos=1)
