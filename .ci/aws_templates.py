#!/usr/bin/env python3
"""What cfn-lint cannot see in deploy/aws/: rules that span templates, or
that tie a template to the gateway.

- the IoT policy of iot.yaml grants what deploy/aws-iot/gateway-policy.json
  grants, per client id instead of per thing name;
- no call deadline the gateway accepts outlives API Gateway's integration,
  the drain fits in the stop timeout, and the deregistration delay covers the
  longest call;
- the ALB's gRPC target group checks health with gRPC and matcher 0, the
  HTTP/1 group with /readyz, and the listener rule sends native gRPC, and
  only native gRPC, to the gRPC group (ALB's header match simulated);
- the task's start-up script, run by dash with a stand-in gateway, writes the
  secrets to owner-only files, drops them from the environment, and gives
  each task a fresh gateway id that is also its seed client prefix;
- the same script with the real gateway, its certificate and key handed over
  in the environment as ECS does, logs in to a Mosquitto that requires client
  certificates (standing in for AWS IoT Core's mutual TLS), becomes ready,
  and drains and exits 0 on SIGTERM, which reaches it directly.

Run: python3 .ci/aws_templates.py (from the repository root). Needs cfn-lint
(its YAML loader) and dash; the last check also needs openssl, mosquitto and
a built thingcall-server (THINGCALL_SERVER_BIN, else target/debug or
target/release), and is skipped, saying so, without them.
"""

import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
AWS = ROOT / "deploy" / "aws"


def load(name):
    template, errors = decode(str(AWS / name))
    if errors:
        raise AssertionError(f"{name}: {errors}")
    return template


def resources_of(template, kind):
    return {
        name: r["Properties"]
        for name, r in template["Resources"].items()
        if r["Type"] == kind
    }


def default(template, parameter):
    return int(template["Parameters"][parameter]["Default"])


def maximum(template, parameter):
    return int(template["Parameters"][parameter]["MaxValue"])


def resolve_seed_branch(value):
    """A resource list with Fn::If [WithSeed, x, NoValue] taken as true."""
    out = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and "Fn::If" in item:
            item = item["Fn::If"][1]
        out.append(item["Fn::Sub"] if isinstance(item, dict) else item)
    return out


def alb_header_match(pattern, value):
    """ALB http-header conditions: case-insensitive, `*` and `?` wildcards."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


class IotPolicy(unittest.TestCase):
    def statements(self):
        policy = resources_of(load("iot.yaml"), "AWS::IoT::Policy")
        (props,) = policy.values()
        return props["PolicyDocument"]["Statement"]

    def test_same_rights_as_gateway_policy_json_per_client_id(self):
        reference = json.loads(
            (ROOT / "deploy" / "aws-iot" / "gateway-policy.json").read_text()
        )

        def normalise(arn):
            return (
                arn.replace("arn:aws:iot:*:*:", "ARN:")
                .replace(
                    "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:",
                    "ARN:",
                )
                .replace("${iot:Connection.Thing.ThingName}", "ME")
                .replace("${!iot:ClientId}", "ME")
                .replace("${TopicRoot}", "thingcall")
            )

        def by_action(statements):
            out = {}
            for s in statements:
                self.assertEqual(s["Effect"], "Allow")
                res = resolve_seed_branch(s["Resource"])
                out.setdefault(s["Action"], set()).update(map(normalise, res))
            return out

        ours = by_action(self.statements())
        theirs = by_action(reference["Statement"])
        self.assertEqual(set(ours), set(theirs))
        for action in ("iot:Publish", "iot:Subscribe", "iot:Receive"):
            self.assertEqual(ours[action], theirs[action], action)
        # Connect: the reference names the thing; replicas share one
        # certificate, so here it is the gateway- prefix.
        self.assertEqual(theirs["iot:Connect"], {"ARN:client/ME"})
        self.assertEqual(ours["iot:Connect"], {"ARN:client/${GatewayClientIdPrefix}*"})

    def test_client_id_prefix_is_one_the_device_policy_denies_devices(self):
        device = json.loads(
            (ROOT / "deploy" / "aws-iot" / "device-policy.json").read_text()
        )
        denied = [
            r
            for s in device["Statement"]
            if s["Effect"] == "Deny" and s["Action"] == "iot:Connect"
            for r in s["Resource"]
        ]
        self.assertIn("arn:aws:iot:*:*:client/gateway-*", denied)
        for name in ("iot.yaml", "ecs.yaml"):
            p = load(name)["Parameters"]["GatewayClientIdPrefix"]
            self.assertEqual(p["Default"], "gateway-")
            self.assertTrue(p["AllowedPattern"].startswith("^gateway-"), name)

    def test_policy_and_thing_are_attached_to_the_certificate(self):
        t = load("iot.yaml")
        (pol,) = resources_of(t, "AWS::IoT::PolicyPrincipalAttachment").values()
        (thing,) = resources_of(t, "AWS::IoT::ThingPrincipalAttachment").values()
        cert_arn = {"Fn::GetAtt": ["GatewayCertificate", "Arn"]}
        self.assertEqual(pol["Principal"], cert_arn)
        self.assertEqual(thing["Principal"], cert_arn)
        (cert,) = resources_of(t, "AWS::IoT::Certificate").values()
        self.assertIn("CertificateSigningRequest", cert)


class Deadlines(unittest.TestCase):
    def test_no_accepted_call_outlives_the_integration(self):
        ecs, api = load("ecs.yaml"), load("api.yaml")
        (integration,) = resources_of(api, "AWS::ApiGatewayV2::Integration").values()
        self.assertEqual(integration["TimeoutInMillis"], {"Ref": "IntegrationTimeoutMillis"})
        self.assertLessEqual(maximum(api, "IntegrationTimeoutMillis"), 29000)
        self.assertEqual(default(api, "IntegrationTimeoutMillis"), 29000)
        # Even the largest value ecs.yaml accepts stays below the default.
        self.assertLess(maximum(ecs, "MaxCallTimeoutSeconds") * 1000, 29000)
        self.assertEqual(default(ecs, "MaxCallTimeoutSeconds"), 25)
        self.assertEqual(
            env(ecs)["THINGCALL_MAX_TIMEOUT"], {"Fn::Sub": "${MaxCallTimeoutSeconds}s"}
        )

    def test_drain_fits_in_stop_timeout_and_delay_covers_a_call(self):
        ecs = load("ecs.yaml")
        self.assertGreater(default(ecs, "StopTimeoutSeconds"), default(ecs, "DrainTimeoutSeconds"))
        self.assertGreaterEqual(
            default(ecs, "DeregistrationDelaySeconds"), default(ecs, "MaxCallTimeoutSeconds")
        )
        self.assertGreaterEqual(
            default(ecs, "DrainTimeoutSeconds"), default(ecs, "MaxCallTimeoutSeconds")
        )
        self.assertEqual(container(ecs)["StopTimeout"], {"Ref": "StopTimeoutSeconds"})
        for tg in resources_of(ecs, "AWS::ElasticLoadBalancingV2::TargetGroup").values():
            attrs = {a["Key"]: a["Value"] for a in tg["TargetGroupAttributes"]}
            self.assertEqual(
                attrs["deregistration_delay.timeout_seconds"],
                {"Ref": "DeregistrationDelaySeconds"},
            )


def container(ecs):
    (task,) = resources_of(ecs, "AWS::ECS::TaskDefinition").values()
    (c,) = task["ContainerDefinitions"]
    return c


def env(ecs):
    out = {}
    for e in container(ecs)["Environment"]:
        if "Fn::If" in e:
            e = e["Fn::If"][2]  # the branch without API keys
        out[e["Name"]] = e["Value"]
    return out


class LoadBalancer(unittest.TestCase):
    def groups(self):
        return resources_of(load("ecs.yaml"), "AWS::ElasticLoadBalancingV2::TargetGroup")

    def test_grpc_group_checks_health_with_grpc_code_0(self):
        g = self.groups()["GrpcTargetGroup"]
        self.assertEqual(g["ProtocolVersion"], "GRPC")
        self.assertEqual(g["HealthCheckPath"], "/grpc.health.v1.Health/Check")
        self.assertEqual(g["Matcher"], {"GrpcCode": "0"})

    def test_http_group_checks_readiness(self):
        g = self.groups()["HttpTargetGroup"]
        self.assertEqual(g["ProtocolVersion"], "HTTP1")
        self.assertEqual(g["HealthCheckPath"], "/readyz")
        self.assertEqual(g["Matcher"], {"HttpCode": "200"})

    def test_only_native_grpc_goes_to_the_grpc_group(self):
        ecs = load("ecs.yaml")
        (rule,) = resources_of(ecs, "AWS::ElasticLoadBalancingV2::ListenerRule").values()
        (cond,) = rule["Conditions"]
        self.assertEqual(cond["HttpHeaderConfig"]["HttpHeaderName"], "content-type")
        patterns = cond["HttpHeaderConfig"]["Values"]
        self.assertEqual(rule["Actions"][0]["TargetGroupArn"], {"Ref": "GrpcTargetGroup"})

        def grpc(ct):
            return any(alb_header_match(p, ct) for p in patterns)

        for ct in ("application/grpc", "application/grpc+proto", "Application/GRPC"):
            self.assertTrue(grpc(ct), ct)
        for ct in (
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
            "application/json",
            "text/event-stream",
            "",
        ):
            self.assertFalse(grpc(ct), ct)
        (listener,) = resources_of(ecs, "AWS::ElasticLoadBalancingV2::Listener").values()
        self.assertEqual(listener["Protocol"], "HTTPS")
        self.assertEqual(
            listener["DefaultActions"][0]["TargetGroupArn"], {"Ref": "HttpTargetGroup"}
        )

    def test_tasks_admit_the_alb_only_on_8080(self):
        ecs = load("ecs.yaml")
        ingress = resources_of(ecs, "AWS::EC2::SecurityGroupIngress")
        to_tasks = [i for i in ingress.values() if i["GroupId"] == {"Ref": "TaskSecurityGroup"}]
        self.assertEqual(len(to_tasks), 1)
        (i,) = to_tasks
        self.assertEqual((i["FromPort"], i["ToPort"]), (8080, 8080))
        self.assertEqual(i["SourceSecurityGroupId"], {"Ref": "AlbSecurityGroup"})
        sg = resources_of(ecs, "AWS::EC2::SecurityGroup")["TaskSecurityGroup"]
        self.assertEqual(
            sorted((e["FromPort"], e["ToPort"]) for e in sg["SecurityGroupEgress"]),
            [(443, 443), (8883, 8883)],
        )


class Api(unittest.TestCase):
    def test_every_route_asks_for_iam(self):
        routes = resources_of(load("api.yaml"), "AWS::ApiGatewayV2::Route")
        keys = {r["RouteKey"] for r in routes.values()}
        self.assertEqual(keys, {"POST /v1/{proxy+}", "GET /v1/{proxy+}", "GET /invoke"})
        for r in routes.values():
            self.assertEqual(r["AuthorizationType"], "AWS_IAM", r["RouteKey"])

    def test_caller_policy_covers_exactly_the_routes(self):
        api = load("api.yaml")
        (policy,) = resources_of(api, "AWS::IAM::ManagedPolicy").values()
        (s,) = policy["PolicyDocument"]["Statement"]
        self.assertEqual(s["Action"], "execute-api:Invoke")
        got = {r["Fn::Sub"].split("${Api}/")[1] for r in s["Resource"]}
        self.assertEqual(got, {"$default/POST/v1/*", "$default/GET/v1/*", "$default/GET/invoke"})


class StartupScript(unittest.TestCase):
    """The container's command, run as ECS would: secrets in the environment."""

    def run_script(self, workdir, api_keys=None):
        c = container(load("ecs.yaml"))
        self.assertEqual(c["EntryPoint"], ["/bin/sh", "-c"])
        (script,) = c["Command"]
        # The task's files go to /tmp; point them into the test's directory.
        script = script.replace("/tmp/", f"{workdir}/")
        stub = Path(workdir) / "bin" / "thingcall-server"
        stub.parent.mkdir(exist_ok=True)
        stub.write_text(f"#!/bin/sh\nenv > {workdir}/env-seen\n")
        stub.chmod(0o755)
        environ = {
            "PATH": f"{stub.parent}:/usr/bin:/bin",
            "GATEWAY_CLIENT_ID_PREFIX": "gateway-",
            "BROKER_CERTIFICATE_PEM": "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----",
            "BROKER_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----",
        }
        if api_keys is not None:
            environ["CALLER_API_KEYS"] = api_keys
        subprocess.run(["dash", "-c", script], env=environ, check=True, timeout=30)
        seen = dict(
            line.split("=", 1)
            for line in (Path(workdir) / "env-seen").read_text().splitlines()
            if "=" in line
        )
        return seen

    def test_secrets_become_owner_only_files_and_leave_the_environment(self):
        with tempfile.TemporaryDirectory() as d:
            seen = self.run_script(d)
            for name in ("broker-cert.pem", "broker-key.pem"):
                mode = stat.S_IMODE(os.stat(Path(d) / name).st_mode)
                self.assertEqual(mode, 0o600, name)
            self.assertIn("\nKEY\n", (Path(d) / "broker-key.pem").read_text())
            self.assertIn("\nCERT\n", (Path(d) / "broker-cert.pem").read_text())
            for secret in ("BROKER_CERTIFICATE_PEM", "BROKER_PRIVATE_KEY", "CALLER_API_KEYS"):
                self.assertNotIn(secret, seen)
            self.assertNotIn("THINGCALL_API_KEYS", seen)
            self.assertFalse((Path(d) / "api-keys").exists())

    def test_each_task_gets_its_own_gateway_id_used_as_seed_prefix(self):
        ids = set()
        for _ in range(3):
            with tempfile.TemporaryDirectory() as d:
                seen = self.run_script(d)
                gid = seen["THINGCALL_GATEWAY_ID"]
                self.assertRegex(gid, re.compile(r"^gateway-[0-9a-f]{8}$"))
                self.assertEqual(seen["THINGCALL_SEED_CLIENT_PREFIX"], gid)
                ids.add(gid)
        self.assertEqual(len(ids), 3)

    def test_api_keys_secret_becomes_the_keys_file(self):
        with tempfile.TemporaryDirectory() as d:
            seen = self.run_script(d, api_keys="ci-bot sha256:" + "ab" * 32)
            path = Path(seen["THINGCALL_API_KEYS"])
            self.assertEqual(path, Path(d) / "api-keys")
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            self.assertEqual(path.read_text(), "ci-bot sha256:" + "ab" * 32 + "\n")
            self.assertNotIn("CALLER_API_KEYS", seen)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_binary():
    candidates = [os.environ.get("THINGCALL_SERVER_BIN", "")] + [
        str(ROOT / "target" / p / "thingcall-server") for p in ("debug", "release")
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=test-ca", cwd=d)
    for name, cn, ext in (
        ("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1"),
        ("client", "gateway-ecs", "extendedKeyUsage=clientAuth"),
    ):
        openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}", cwd=d)
        Path(d, f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", f"{name}.ext", cwd=d)


def wait_for(what, check, timeout=30.0):
    """Polls an observable condition, bounded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


@unittest.skipUnless(
    gateway_binary() and shutil.which("mosquitto") and shutil.which("openssl"),
    "needs a built thingcall-server, mosquitto and openssl",
)
class StartupScriptWithTheGateway(unittest.TestCase):
    def test_gateway_logs_in_with_the_handed_over_certificate_and_drains(self):
        with tempfile.TemporaryDirectory() as d:
            make_pki(d)
            # Mosquitto started as root reads its files as user mosquitto.
            os.chmod(d, 0o755)
            for name in ("ca.pem", "server.pem", "server.key"):
                os.chmod(Path(d, name), 0o644)
            mqtt_port, http_port = free_port(), free_port()
            Path(d, "mosquitto.conf").write_text(
                f"listener {mqtt_port} 127.0.0.1\n"
                f"cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
                "require_certificate true\nuse_identity_as_username true\n"
                "allow_anonymous false\nlog_dest stderr\nlog_type all\n"
            )
            broker_log = open(Path(d, "mosquitto.log"), "w")
            self.addCleanup(broker_log.close)
            broker = subprocess.Popen(
                ["mosquitto", "-c", f"{d}/mosquitto.conf"],
                stdout=broker_log, stderr=subprocess.STDOUT,
            )
            self.addCleanup(broker.wait, 10)
            self.addCleanup(broker.terminate)

            def broker_listening():
                if broker.poll() is not None:
                    raise AssertionError(Path(d, "mosquitto.log").read_text())
                with socket.socket() as probe:
                    return probe.connect_ex(("127.0.0.1", mqtt_port)) == 0

            wait_for("Mosquitto's listener", broker_listening)

            c = container(load("ecs.yaml"))
            (script,) = c["Command"]
            script = script.replace("/tmp/", f"{d}/run-")
            environ = {k: v for k, v in env(load("ecs.yaml")).items() if isinstance(v, str)}
            environ.update(
                PATH=f"{Path(gateway_binary()).parent}:/usr/bin:/bin",
                GATEWAY_CLIENT_ID_PREFIX="gateway-",
                THINGCALL_LISTEN=f"127.0.0.1:{http_port}",
                THINGCALL_MQTT_URL=f"mqtts://127.0.0.1:{mqtt_port}",
                THINGCALL_MQTT_CA=f"{d}/ca.pem",
                THINGCALL_MQTT_CERT=f"{d}/run-broker-cert.pem",
                THINGCALL_MQTT_KEY=f"{d}/run-broker-key.pem",
                THINGCALL_MAX_TIMEOUT="25s",
                THINGCALL_DEFAULT_TIMEOUT="10s",
                THINGCALL_DRAIN_TIMEOUT="25s",
                BROKER_CERTIFICATE_PEM=Path(d, "client.pem").read_text(),
                BROKER_PRIVATE_KEY=Path(d, "client.key").read_text(),
            )
            gateway_log = open(Path(d, "gateway.log"), "w")
            self.addCleanup(gateway_log.close)
            gateway = subprocess.Popen(
                ["dash", "-c", script], env=environ,
                stdout=gateway_log, stderr=subprocess.STDOUT,
            )
            self.addCleanup(lambda: gateway.poll() is None and gateway.kill())

            base = f"http://127.0.0.1:{http_port}"
            # What the ALB's HTTP/1 health check asks: 200 once the MQTT
            # session is up.
            try:
                wait_for("GET /readyz 200", lambda: http_get(f"{base}/readyz")[0] == 200)
            except AssertionError as e:
                raise AssertionError(
                    f"{e}: {http_get(f'{base}/readyz')}\n"
                    + Path(d, "gateway.log").read_text()
                    + Path(d, "mosquitto.log").read_text()
                ) from None
            self.assertIn("thingcall_mqtt_connected 1", http_get(f"{base}/metrics")[1])
            # The broker saw the certificate's name and the drawn client id.
            log = Path(d, "mosquitto.log").read_text()
            m = re.search(r"as (gateway-[0-9a-f]{8}) .*u'gateway-ecs'", log)
            self.assertIsNotNone(m, log)
            # The script exec'd the gateway: SIGTERM goes straight to it.
            gateway.send_signal(signal.SIGTERM)
            self.assertEqual(gateway.wait(timeout=60), 0, Path(d, "gateway.log").read_text())
            for secret in ("BEGIN PRIVATE KEY", "BEGIN CERTIFICATE"):
                self.assertNotIn(secret, Path(d, "gateway.log").read_text())


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print(f"aws templates: {passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed or not result.wasSuccessful() else 0)
