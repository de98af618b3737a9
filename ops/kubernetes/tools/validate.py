"""Renders ops/kubernetes/base and every overlay, and validates every object:

- Kubernetes objects against the OpenAPI schemas of Kubernetes KUBERNETES_VERSION
  (kubernetes-validate, strict: unknown fields are errors);
- KEDA objects against the transcribed KEDA CRD schemas in schemas/keda-v2.16.1
  (jsonschema), and redis-streams trigger metadata against that scaler's keys;
- MUTT's own rules: every MUTT_*/OTEL_* variable is a setting MUTT reads, MUTT_CONSUMER
  comes from the pod name, probes are /health and /ready on the ops port, the grace
  period outlasts MUTT_SHUTDOWN_GRACE, *_FILE settings point into a mounted Secret key,
  the ScaledObjects' streams and groups are MUTT's names for the ConfigMap's prefix, and
  every scale target exists.

Where `kubectl` is installed, the rendering is also compared with `kubectl kustomize`.
Exits 1 on any error. Run it through ops/kubernetes/validate.sh.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

sys.path.insert(0, os.path.dirname(__file__))
import kustomize_lite  # noqa: E402

KUBERNETES_VERSION = "1.32.0"
HERE = os.path.dirname(os.path.abspath(__file__))
K8S = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(K8S))
KEDA = os.path.join(K8S, "schemas", "keda-v2.16.1")
OPS_PORT = 9464

errors = []


def fail(where, message):
    errors.append(f"{where}: {message}")
    print(f"  FAIL {where}: {message}")


def targets():
    out = ["base"]
    od = os.path.join(K8S, "overlays")
    for name in sorted(os.listdir(od)):
        if os.path.exists(os.path.join(od, name, "kustomization.yaml")):
            out.append(f"overlays/{name}")
    return out


def mutt_settings():
    """The environment variables MUTT reads: the static registry and the hot settings."""
    with open(os.path.join(REPO, "processor/core/src/settings/registry.rs")) as f:
        static = set(re.findall(r'^\s*"((?:MUTT|OTEL)_[A-Z0-9_]+)"\s*=>', f.read(), re.M))
    with open(os.path.join(REPO, "processor/core/src/hot.rs")) as f:
        text = f.read()
    block = text[text.index("hot_settings! {"):]
    hot = {"MUTT_" + k.upper() for k in re.findall(r"^\s+([a-z0-9_]+): [A-Za-z0-9]+ = \"", block, re.M)}
    if len(static) < 20 or len(hot) < 10:
        sys.exit("validate.py: could not read MUTT's settings from processor/core/src")
    return static | hot


def names_rs_check():
    """The stream names validate.py expects are the ones processor/bus/src/names.rs makes."""
    with open(os.path.join(REPO, "processor/bus/src/names.rs")) as f:
        text = f.read()
    for needle in ('format!("{}:events", self.prefix)', 'format!("{}:alerts", self.prefix)',
                   'ALERTER_GROUP: &str = "alerter"', 'FORWARDER_GROUP: &str = "forwarder"'):
        if needle not in text:
            fail("processor/bus/src/names.rs", f"no longer has {needle!r}: update validate.py")


def kubectl_render(target):
    if not shutil.which("kubectl"):
        return None
    r = subprocess.run(["kubectl", "kustomize", os.path.join(K8S, target)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        fail(target, f"kubectl kustomize failed: {r.stderr.strip()}")
        return None
    return [d for d in yaml.safe_load_all(r.stdout) if d is not None]


def canonical(objects):
    return {kustomize_lite.key(o): json.dumps(o, sort_keys=True) for o in objects}


def ident(o):
    return f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"


def parse_duration(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", s)
    if not m:
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def pod_spec(o):
    if o["kind"] in ("Deployment", "StatefulSet", "Job"):
        return o["spec"]["template"]["spec"]
    if o["kind"] == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def check_pod(where, o, spec, settings, configmaps):
    cm_env = {}
    secret_keys = {}
    for c in spec.get("containers", []):
        for ef in c.get("envFrom", []):
            name = ef.get("configMapRef", {}).get("name")
            if name not in configmaps:
                fail(where, f"envFrom ConfigMap {name} is not in the rendering")
            else:
                cm_env.update(configmaps[name])
    for v in spec.get("volumes", []):
        if "secret" in v:
            secret_keys[v["name"]] = {i["path"] for i in v["secret"].get("items", [])}
    for c in spec.get("containers", []):
        env = {e["name"]: e for e in c.get("env", [])}
        every = set(cm_env) | set(env)
        for name in sorted(every):
            if name.startswith(("MUTT_", "OTEL_")) and name not in settings:
                fail(where, f"{name} is not a setting MUTT reads (processor/core/src/settings)")
        for name, e in env.items():
            if name.endswith("_FILE") and "value" in e:
                path = e["value"]
                mounts = [m for m in c.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
                if not mounts:
                    fail(where, f"{name}={path} is not under a mounted volume")
                    continue
                m = mounts[0]
                rel = path[len(m["mountPath"].rstrip("/")) + 1:]
                if m.get("subPath"):
                    fail(where, f"{name}: subPath mounts are never updated, so rotation would not reach the file")
                if m["name"] in secret_keys and rel not in secret_keys[m["name"]]:
                    fail(where, f"{name}={path}: the Secret volume {m['name']} has no item {rel}")
            if "value" in e:
                for ref in re.findall(r"\$\(([A-Za-z0-9_]+)\)", e["value"]):
                    if ref not in cm_env and ref not in env:
                        fail(where, f"{name} refers to $({ref}), which is not defined")
        if o["kind"] == "CronJob":
            continue
        # Long-running roles.
        consumer = env.get("MUTT_CONSUMER", {})
        if consumer.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
            fail(where, "MUTT_CONSUMER must come from the pod name (downward API metadata.name)")
        if "MUTT_CONSUMER" in cm_env:
            fail(where, "MUTT_CONSUMER must not be in a ConfigMap: it must be unique per pod")
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if ports.get("ops") != OPS_PORT:
            fail(where, f"container port `ops` must be {OPS_PORT}")
        for probe, path in (("livenessProbe", "/health"), ("startupProbe", "/health"), ("readinessProbe", "/ready")):
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path or get.get("port") not in ("ops", OPS_PORT):
                fail(where, f"{probe} must be GET {path} on the ops port")
        raw = env.get("MUTT_SHUTDOWN_GRACE", {}).get("value") or cm_env.get("MUTT_SHUTDOWN_GRACE") or "20s"
        grace = parse_duration(raw)
        if grace is None:
            fail(where, f"MUTT_SHUTDOWN_GRACE {raw!r}: validate.py reads only <n>ms|s|m|h")
            grace = 20
        pre = 0
        cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if len(cmd) == 2 and cmd[0] == "sleep":
            pre = int(cmd[1])
        tgps = spec.get("terminationGracePeriodSeconds", 30)
        if tgps <= grace + pre:
            fail(where, f"terminationGracePeriodSeconds {tgps} must exceed MUTT_SHUTDOWN_GRACE {grace}s + preStop {pre}s")
        res = c.get("resources", {})
        if not res.get("requests", {}).get("memory") or not res.get("limits", {}).get("memory"):
            fail(where, "memory request and limit are required")


def check_keda(where, o, objects, configmaps, rs):
    spec = o["spec"]
    target = spec["scaleTargetRef"]["name"]
    deps = [d for d in objects if d["kind"] == "Deployment" and d["metadata"]["name"] == target]
    if not deps:
        fail(where, f"scaleTargetRef {target} is not a Deployment in the rendering")
        return
    if "replicas" in deps[0]["spec"] and deps[0]["spec"]["replicas"] != spec.get("minReplicaCount", 1):
        print(f"  note {where}: {target} has replicas {deps[0]['spec']['replicas']}; an apply resets KEDA's count to it")
    cm_env = {}
    for c in deps[0]["spec"]["template"]["spec"]["containers"]:
        for ef in c.get("envFrom", []):
            cm_env.update({k: {"value": v} for k, v in configmaps.get(ef.get("configMapRef", {}).get("name"), {}).items()})
        cm_env.update({e["name"]: e for e in c.get("env", [])})
    prefix = cm_env.get("MUTT_PREFIX", {}).get("value", "mutt")
    streams = {"alerter": f"{prefix}:events", "forwarder": f"{prefix}:alerts"}
    for t in spec["triggers"]:
        if t["type"] != rs["scaler"]:
            fail(where, f"trigger type {t['type']}: validate.py knows only {rs['scaler']}")
            continue
        md = t["metadata"]
        for k in md:
            if k not in rs["metadata"]:
                fail(where, f"redis-streams metadata key {k!r} is not one of the scaler's")
        for k in rs["required"]:
            if k not in md:
                fail(where, f"redis-streams needs {k}")
        modes = [m for m in rs["modes"] if m in md]
        if modes != ["lagCount"]:
            fail(where, f"expected the lag mode (lagCount) only, found {modes}")
        for m in modes:
            for need in rs["modes"][m]:
                if need not in md:
                    fail(where, f"{m} needs {need}")
        group = md.get("consumerGroup")
        if group not in streams or md.get("stream") != streams[group]:
            fail(where, f"stream {md.get('stream')!r} / group {group!r}: MUTT's are "
                        f"{streams} for MUTT_PREFIX={prefix!r}")
        if target != f"mutt-{group}":
            fail(where, f"group {group} scales {target}, not mutt-{group}")
        for k in ("addressFromEnv", "hostFromEnv", "portFromEnv", "passwordFromEnv", "usernameFromEnv"):
            if k in md and md[k] not in cm_env:
                fail(where, f"{k}={md[k]} is not in {target}'s environment")
        ref = t.get("authenticationRef", {}).get("name")
        if ref:
            auths = [a for a in objects if a["kind"] == "TriggerAuthentication" and a["metadata"]["name"] == ref]
            if not auths:
                fail(where, f"authenticationRef {ref} is not in the rendering")
            for a in auths:
                for s in a["spec"].get("secretTargetRef", []):
                    if s["parameter"] not in rs["authentication_parameters"]:
                        fail(ident(a), f"parameter {s['parameter']} is not one of redis-streams'")


def check_target(target, settings, schemas, rs):
    print(f"== {target}")
    try:
        objects = kustomize_lite.render(os.path.join(K8S, target))
    except (kustomize_lite.KustomizeError, OSError, KeyError, yaml.YAMLError) as e:
        fail(target, f"render: {e}")
        return
    theirs = kubectl_render(target)
    if theirs is not None:
        a, b = canonical(objects), canonical(theirs)
        if a != b:
            only = sorted(set(a) ^ set(b), key=str)
            diff = [k for k in a if k in b and a[k] != b[k]]
            fail(target, f"kustomize_lite and kubectl kustomize differ: objects only in one {only}, "
                         f"objects that differ {diff}")
        else:
            print(f"  rendering identical to `kubectl kustomize` ({len(objects)} objects)")
    else:
        print("  kubectl not installed: rendered with kustomize_lite only")
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    for o in objects:
        where = f"{target}: {ident(o)}"
        api = o.get("apiVersion", "")
        if api.startswith("keda.sh/"):
            schema = schemas.get(o.get("kind"))
            if schema is None:
                fail(where, f"no KEDA schema for kind {o.get('kind')}")
                continue
            errs = sorted(jsonschema.Draft202012Validator(schema).iter_errors(o), key=lambda e: list(e.path))
            for e in errs:
                fail(where, f"KEDA v2.16.1 schema: {'/'.join(map(str, e.path))}: {e.message}")
            if o["kind"] == "ScaledObject":
                check_keda(where, o, objects, configmaps, rs)
            if not errs:
                print(f"  ok   {ident(o)} (KEDA v2.16.1 CRD schema)")
            continue
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(where, f"Kubernetes {KUBERNETES_VERSION}: {'/'.join(map(str, e.path))}: {e.message}")
            continue
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
            fail(where, f"Kubernetes {KUBERNETES_VERSION}: {getattr(e, 'message', e)}")
            continue
        spec = pod_spec(o)
        if spec is not None:
            check_pod(where, o, spec, settings, configmaps)
        print(f"  ok   {ident(o)} (Kubernetes {KUBERNETES_VERSION}, strict)")


def main():
    settings = mutt_settings()
    names_rs_check()
    schemas = {}
    for kind, fname in (("ScaledObject", "scaledobject.json"), ("TriggerAuthentication", "triggerauthentication.json")):
        with open(os.path.join(KEDA, fname)) as f:
            schemas[kind] = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schemas[kind])
    with open(os.path.join(KEDA, "redis-streams.json")) as f:
        rs = json.load(f)
    print(f"kubernetes-validate {kubernetes_validate.version.__version__}, Kubernetes {KUBERNETES_VERSION}; "
          f"KEDA schemas {os.path.relpath(KEDA, REPO)}; {len(settings)} MUTT settings known")
    for t in targets():
        check_target(t, settings, schemas, rs)
    if errors:
        print(f"\n{len(errors)} problem(s):")
        for e in errors:
            print(f"  {e}")
        return 1
    print("\nall manifests valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
