#!/usr/bin/env python3
"""Check what a rendering of the thingcall chart promises, beyond schemas.

    deploy/helm/check-rendered.py RENDERED.yaml VALUES.yaml [SERVICEMONITOR_SCHEMA.json]

kubernetes-validate says each object is well-formed; this says the chart does
what its values and README say: a unique gateway id per pod, the hardening,
probes on the right health services, a grace period above the drain, secret
values in Secrets only, every file the gateway is pointed at mounted, and the
optional objects present exactly when enabled. ServiceMonitors (a CRD, with
no schema in kubernetes-validate) are checked against the schema given.
Prints each failure and exits 1 if there is any.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART_VALUES = Path(__file__).resolve().parent / "thingcall" / "values.yaml"
RECOMMENDED = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
               "app.kubernetes.io/version", "app.kubernetes.io/managed-by")
# Env vars the gateway reads as file paths.
FILE_VARS = ("THINGCALL_MQTT_PASSWORD_FILE", "THINGCALL_MQTT_CA", "THINGCALL_MQTT_CERT",
             "THINGCALL_MQTT_KEY", "THINGCALL_API_KEYS", "THINGCALL_JWT_SECRET_FILE",
             "THINGCALL_POLICY")

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def seconds(duration: str) -> int:
    return int(str(duration).removesuffix("s"))


def secret_strings(values: dict[str, Any]) -> list[str]:
    """Every secret value given inline, line by line (PEM bodies included)."""
    m, a = values["mqtt"], values["auth"]
    raw = [m["password"], m["tls"]["cert"], m["tls"]["key"], a["apiKeys"], a["jwt"]["secret"]]
    out = []
    for item in raw:
        for line in str(item or "").splitlines():
            line = line.strip()
            if line and not line.startswith("-----"):
                out.append(line)
    return out


def check_deployment(dep: dict[str, Any], cm: dict[str, Any], values: dict[str, Any]) -> None:
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c.get("env", [])}

    def from_pod_name(name: str) -> bool:
        e = env.get(name, {})
        ref = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if ref == "metadata.name":
            return True
        pod_name = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {})
        return (pod_name.get("fieldPath") == "metadata.name"
                and e.get("value") == f"{values['gatewayIdPrefix']}$(POD_NAME)")

    check(from_pod_name("THINGCALL_GATEWAY_ID"), "THINGCALL_GATEWAY_ID is not the pod name")
    check(from_pod_name("THINGCALL_SEED_CLIENT_PREFIX"),
          "THINGCALL_SEED_CLIENT_PREFIX is not the pod name")
    check(env.get("THINGCALL_LISTEN", {}).get("value") == "0.0.0.0:8080",
          "THINGCALL_LISTEN is not 0.0.0.0:8080")

    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 10001,
          "pod does not run as non-root uid 10001")
    check(csc.get("readOnlyRootFilesystem") is True, "root filesystem is writable")
    check(csc.get("allowPrivilegeEscalation") is False, "privilege escalation allowed")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities not all dropped")
    check("limits" in c.get("resources", {}) and "requests" in c["resources"],
          "resources lack requests or limits")

    ready = c.get("readinessProbe", {}).get("grpc", {})
    check(ready.get("port") == 8080 and ready.get("service") == "thingcall.v1.DeviceGateway",
          "readiness is not grpc health of thingcall.v1.DeviceGateway on 8080")
    for name in ("livenessProbe", "startupProbe"):
        probe = c.get(name, {}).get("grpc", {})
        check(probe.get("port") == 8080 and probe.get("service", "") == "",
              f"{name} is not grpc health of service \"\" on 8080")

    drain = seconds(cm["data"]["THINGCALL_DRAIN_TIMEOUT"])
    check(drain == seconds(values["drainTimeout"]), "THINGCALL_DRAIN_TIMEOUT is not drainTimeout")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace > pre + drain,
          f"terminationGracePeriodSeconds {grace} is not above preStop {pre} + drain {drain}")

    # Every file the gateway is told to read is under a mounted volume.
    mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
    paths = [env[v]["value"] for v in FILE_VARS if v in env]
    jwks = env.get("THINGCALL_JWT_JWKS", {}).get("value") or cm["data"].get("THINGCALL_JWT_JWKS")
    if jwks and not jwks.startswith("https://"):
        paths.append(jwks)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounted_files = set()
    for m in c.get("volumeMounts", []):
        vol = volumes.get(m["name"], {})
        items = [i for s in vol.get("projected", {}).get("sources", [])
                 for i in s.get("secret", {}).get("items", [])]
        items += vol.get("configMap", {}).get("items", [])
        mounted_files |= {f"{m['mountPath']}/{i['path']}" for i in items}
    for p in paths:
        check(any(p.startswith(mp + "/") for mp in mounts), f"{p} is on no mounted volume")
        check(p in mounted_files, f"{p} is not one of the files its volume projects")

    hpa = values["hpa"]["enabled"]
    check(("replicas" in dep["spec"]) != hpa,
          "Deployment sets replicas while the HPA owns them" if hpa
          else "Deployment has no replica count")
    if not hpa:
        check(dep["spec"]["replicas"] == values["replicaCount"], "replicas is not replicaCount")


def main() -> int:
    rendered, values_file = Path(sys.argv[1]), Path(sys.argv[2])
    sm_schema = json.loads(Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else None
    values = merge(yaml.safe_load(CHART_VALUES.read_text()),
                   yaml.safe_load(values_file.read_text()) or {})
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        labels = d["metadata"].get("labels", {})
        missing = [k for k in RECOMMENDED if k not in labels]
        check(not missing, f"{d['kind']}/{d['metadata']['name']} lacks labels {missing}")

    for kind in ("Deployment", "Service", "ConfigMap", "ServiceAccount"):
        check(len(by_kind.get(kind, [])) == 1, f"expected one {kind}")
    for kind, on in (("HorizontalPodAutoscaler", values["hpa"]["enabled"]),
                     ("ServiceMonitor", values["serviceMonitor"]["enabled"]),
                     ("PodDisruptionBudget", values["podDisruptionBudget"]["enabled"])):
        check(len(by_kind.get(kind, [])) == (1 if on else 0),
              f"{kind} present: {kind in by_kind}, enabled: {on}")
    if failures:
        return report()

    (cm,) = by_kind["ConfigMap"]
    check_deployment(by_kind["Deployment"][0], cm, values)

    (svc,) = by_kind["Service"]
    ports = svc["spec"]["ports"]
    check(len(ports) == 1 and ports[0]["name"] == "grpc"
          and ports[0].get("appProtocol") == "kubernetes.io/h2c",
          "Service's one port is not grpc with appProtocol kubernetes.io/h2c")

    # Secret values: in the chart's Secret, never in the ConfigMap.
    cm_text = yaml.safe_dump(cm)
    secret_text = "".join(base64.b64decode(v).decode() for s in by_kind.get("Secret", [])
                          for v in (s.get("data") or {}).values())
    for s in secret_strings(values):
        check(s not in cm_text, f"a secret value is in the ConfigMap: {s[:12]}...")
        check(s in secret_text, f"a secret value is not in the Secret: {s[:12]}...")

    if sm_schema is not None:
        import jsonschema

        for sm in by_kind.get("ServiceMonitor", []):
            for err in jsonschema.Draft202012Validator(sm_schema).iter_errors(sm):
                path = ".".join(str(p) for p in err.absolute_path)
                failures.append(f"ServiceMonitor {path}: {err.message}")
    return report()


def report() -> int:
    for f in failures:
        print(f"check-rendered: {sys.argv[1]}: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
