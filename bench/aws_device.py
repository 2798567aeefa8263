#!/usr/bin/env python3
"""A seed-contract echo device on AWS's own MQTT client (awscrt, the client
under awsiotsdk), connected the way the AWS sample's test client is: MQTT
3.1.1, client id = device id, a persistent session (clean_session=False,
mqtt_connection_builder's default), `{device}/#` subscribed at QoS 1 and acks
published at QoS 1 from the message callback. Plain TCP, no TLS: for a local
broker in benchmarks and tests, not for AWS IoT Core.

Requests arrive on `{device}/{method}/{client_prefix}/{m_id}` with
`{"timestamp","request","id"}`; the ack goes to
`{client_prefix}/{m_id}/{device}/{method}/ack` with `{"id","response"}`.
Method `echo` answers the request string itself; any other method gets the
sample device's answer `Your request was '<request>'. Some random response:
'<number>'`.

    python3 bench/aws_device.py --port 1883 --device-id Device002
    python3 bench/aws_device.py --port 1883 --devices 4 --id-prefix aws-

Prints one line `ready` on stdout once every device holds its subscription;
exits 0 on SIGTERM or SIGINT after disconnecting. One MQTT connection per
device id (as with real devices), all in this one process.
"""

import argparse
import collections
import ipaddress
import json
import random
import signal
import sys

try:
    from awscrt import io, mqtt
except ImportError as e:  # the caller (bench/run.sh) checks before starting us
    sys.exit(f"aws_device.py: awscrt is not importable ({e}); pip install awsiotsdk")

# Message ids remembered per device for duplicate detection: a QoS 1
# redelivery (DUP) of a request already run is not run again.
SEEN = 1024


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=1883, help="broker port, plain TCP (default 1883)")
    p.add_argument("--device-id", action="append", default=[], metavar="ID",
                   help="a device id, also its MQTT client id (repeatable)")
    p.add_argument("--devices", type=int, default=0, metavar="N",
                   help="also serve N devices named <id-prefix>1..<id-prefix>N")
    p.add_argument("--id-prefix", default="aws-", help="prefix of the numbered ids (default aws-)")
    p.add_argument("--client-prefix", default=None, metavar="P",
                   help="serve only requests of the gateway with this client_prefix (the third "
                        "topic level); default: any, each acked under its own request's prefix")
    p.add_argument("--sub-qos", type=int, choices=(0, 1), default=1,
                   help="QoS of the request subscription (the sample: 1)")
    p.add_argument("--ack-qos", type=int, choices=(0, 1), default=1,
                   help="QoS of the acks (the sample: 1)")
    p.add_argument("--keep-alive", type=int, default=30, metavar="SECS",
                   help="MQTT keep-alive (default 30, the AWS samples' value)")
    a = p.parse_args(argv)
    a.ids = list(a.device_id) + [f"{a.id_prefix}{i}" for i in range(1, a.devices + 1)]
    if not a.ids:
        p.error("give --device-id ID (repeatable) or --devices N")
    if len(set(a.ids)) != len(a.ids):
        p.error("device ids repeat")
    for i in a.ids:
        if not i or any(c in i for c in "/+#") or i.startswith("$"):
            p.error(f"{i!r} is no device id (1+ bytes, no '/', '+', '#', no leading '$')")
    return a


def sample_answer(request):
    """The AWS sample device's answer to any request."""
    return f"Your request was '{request}'. Some random response: '{random.uniform(0, 1000)}'"


class Device:
    """One device: one MQTT connection, its subscription, its acks."""

    def __init__(self, device_id, args, client):
        self.id = device_id
        self.args = args
        self.sub_qos = mqtt.QoS(args.sub_qos)
        self.ack_qos = mqtt.QoS(args.ack_qos)
        self.seen = collections.OrderedDict()
        self.served = 0
        self.dropped = 0
        sock = io.SocketOptions()
        try:
            if ipaddress.ip_address(args.host).version == 4:
                sock.domain = io.SocketDomain.IPv4
        except ValueError:
            pass  # a name: the resolver picks the family
        self.conn = mqtt.Connection(
            client=client,
            host_name=args.host,
            port=args.port,
            client_id=device_id,
            clean_session=False,
            keep_alive_secs=args.keep_alive,
            socket_options=sock,
            # No SDK metrics in the CONNECT username: AWS IoT Core reads
            # them; a local broker would see a username the device has not.
            disable_metrics=True,
        )

    def start(self):
        self.conn.connect().result(timeout=10)
        future, _ = self.conn.subscribe(f"{self.id}/#", self.sub_qos, self.on_request)
        granted = future.result(timeout=10).get("qos")
        if granted is None:
            raise RuntimeError(f"{self.id}: the broker refused the subscription {self.id}/#")

    def on_request(self, topic, payload, dup=False, qos=None, retain=False, **kwargs):
        # Runs on the CRT's event-loop thread, as the sample's callback does;
        # so does the publish below.
        levels = topic.split("/")
        if len(levels) != 4 or not all(levels) or levels[0] != self.id:
            self.dropped += 1
            return
        _, method, client_prefix, m_id = levels
        if self.args.client_prefix is not None and client_prefix != self.args.client_prefix:
            self.dropped += 1
            return
        try:
            body = json.loads(payload)
            request = body["request"]
        except (ValueError, KeyError, TypeError):
            self.dropped += 1
            return
        if m_id in self.seen:
            self.dropped += 1
            return
        self.seen[m_id] = None
        if len(self.seen) > SEEN:
            self.seen.popitem(last=False)
        response = request if method == "echo" else sample_answer(request)
        ack = json.dumps({"id": m_id, "response": response}, separators=(",", ":"))
        self.conn.publish(f"{client_prefix}/{m_id}/{self.id}/{method}/ack", ack, self.ack_qos)
        self.served += 1

    def stop(self):
        try:
            self.conn.disconnect().result(timeout=5)
        except Exception as e:  # a broker already gone: nothing to say goodbye to
            print(f"aws_device.py: {self.id}: disconnect: {e}", file=sys.stderr)


def main():
    args = parse_args()
    # Block the stop signals before the CRT starts its threads (they inherit
    # the mask), then wait for one on this thread: no handler runs inside a
    # CRT callback, and no polling.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    elg = io.EventLoopGroup(1)
    bootstrap = io.ClientBootstrap(elg, io.DefaultHostResolver(elg))
    client = mqtt.Client(bootstrap, None)  # no TLS context: plain TCP
    devices = [Device(i, args, client) for i in args.ids]
    started = []
    try:
        for d in devices:
            d.start()
            started.append(d)
    except Exception as e:
        print(f"aws_device.py: {e}", file=sys.stderr)
        for d in started:
            d.stop()
        return 1
    print("ready", flush=True)
    signal.sigwait(stop_signals)
    for d in devices:
        d.stop()
    served = sum(d.served for d in devices)
    dropped = sum(d.dropped for d in devices)
    print(f"aws_device.py: {len(devices)} devices served {served} requests, dropped {dropped}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
