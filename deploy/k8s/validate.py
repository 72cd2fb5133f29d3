#!/usr/bin/env python3
"""Offline validation of the Kubernetes deployment in deploy/k8s (run by `make test`).

No cluster, registry or network is needed. Each check prints one line; any problem fails the run:

  settings     cluster.yaml itself: at least 3 NATS servers, replicas within them, at least 2 hosts
  generated    app/wadm.yaml is exactly what `orders-manifest cluster` derives from wadm.yaml
  wadm         `wash app validate` finds no error and no warning in app/wadm.yaml
  oam-schema   app/wadm.yaml against wadm's OAM JSON schema (generated from wadm-types)
  core-kinds   Namespace, Service, Ingress, Secret with kubernetes-validate --strict
  host-config  the WasmCloudHostConfig against schemas/wasmcloudhostconfig-v1alpha1.json, its
               embedded Kubernetes types against Kubernetes' own schemas
  platform     the wasmcloud-platform values: NATS cluster of nats_servers, JetStream on volumes, domains,
               NATS authorization (server.conf from its Secret), wadm's creds
  references   names, ports, labels, paths, registry, lattice, namespace, host count, host image,
               providers on every host and replicas agree across files
  push-script  push.sh parses (bash -n)

usage: validate.py [--root DIR]   (DIR: the checkout; default: this file's ../..)
needs: ORDERS_WASH (wash), ORDERS_MANIFEST_TOOL (orders-manifest), and the Python packages
kubernetes-validate and jsonschema (make test installs them into its venv).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import jsonschema
import kubernetes_validate
import referencing
import yaml
from kubernetes_validate.utils import schema_contents

HERE = Path(__file__).resolve().parent
CORE_FILES = [
    "namespace.yaml",
    "app/service-http.yaml",
    "app/ingress.yaml",
    "host/registry-credentials.example.yaml",
    "registry/registry.yaml",
]
# Kinds a namespace-scoped object of ours must carry `metadata.namespace` for.
# A capability the host image serves in its process (app/wadm.yaml keeps them as wadm.yaml has them).
BUILTIN_PREFIX = "wasmcloud+builtin://"
NAMESPACED = {"Service", "Ingress", "Secret", "WasmCloudHostConfig", "Deployment",
              "PersistentVolumeClaim"}


class Bundle:
    """Every file of deploy/k8s, parsed, plus the kept manifest it is derived from."""

    def __init__(self, root: Path):
        self.root = root
        self.k8s = root / "deploy" / "k8s"
        self.settings = self.yaml("cluster.yaml")
        self.platform = self.yaml("platform/values.yaml")
        self.host_config = self.yaml("host/wasmcloudhostconfig.yaml")
        # Core-kind files may hold several objects; each is known as "<file> <Kind>/<name>".
        self.core = {}
        for name in CORE_FILES:
            with open(self.k8s / name) as f:
                for obj in yaml.safe_load_all(f):
                    self.core[f"{name} {obj.get('kind')}/{dig(obj, 'metadata.name')}"] = obj
        self.app = self.yaml("app/wadm.yaml")

    def yaml(self, relative: str) -> Any:
        with open(self.k8s / relative) as f:
            return yaml.safe_load(f)

    def by_kind(self, kind: str, name: str | None = None) -> dict:
        return next(o for o in self.core.values() if o.get("kind") == kind
                    and name in (None, dig(o, "metadata.name")))


# ---------------------------------------------------------------- checks


def check_generated(b: Bundle) -> list[str]:
    derived = run(
        [tool("ORDERS_MANIFEST_TOOL"), "cluster", "--settings", str(b.k8s / "cluster.yaml"),
         str(b.root / "wadm.yaml")]
    )
    committed = (b.k8s / "app" / "wadm.yaml").read_text()
    if derived != committed:
        return ["app/wadm.yaml differs from what wadm.yaml and cluster.yaml give: "
                "run `make k8s-manifest` (the file is generated, never edited by hand)"]
    return []


def check_wadm(b: Bundle) -> list[str]:
    out = run([tool("ORDERS_WASH"), "app", "validate", "-o", "json",
               str(b.k8s / "app" / "wadm.yaml")])
    report = json.loads(out[out.index("{"):])
    found = [f"{p['level']}: {p['msg']}" for p in report.get("errors", []) + report.get("warnings", [])]
    if not report.get("valid", False) and not found:
        found = ["wash app validate: not valid"]
    return found


def check_oam_schema(b: Bundle) -> list[str]:
    schema = json.loads(run([tool("ORDERS_MANIFEST_TOOL"), "schema"]))
    validator = jsonschema.Draft7Validator(schema)
    return [f"app/wadm.yaml {path_of(e)}: {e.message}" for e in validator.iter_errors(b.app)]


def check_core_kinds(b: Bundle) -> list[str]:
    version = b.settings["versions"]["kubernetes"]
    problems = []
    for name, obj in b.core.items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{name} {path_of(e)}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"{name}: {e}")
    return problems


def check_settings(b: Bundle) -> list[str]:
    s = b.settings
    problems = []
    if s["nats_servers"] < 3:
        problems.append("cluster.yaml: nats_servers must be at least 3 (a majority survives one lost)")
    if not 1 <= s["jetstream_replicas"] <= s["nats_servers"]:
        problems.append("cluster.yaml: jetstream_replicas must be between 1 and nats_servers")
    if s["hosts"] < 2:
        problems.append("cluster.yaml: hosts must be at least 2 (one host lost leaves another serving)")
    return problems


def check_host_config(b: Bundle) -> list[str]:
    whc = b.host_config
    with open(b.k8s / "schemas" / "wasmcloudhostconfig-v1alpha1.json") as f:
        schema = json.load(f)
    problems = [f"host/wasmcloudhostconfig.yaml {path_of(e)}: {e.message}"
                for e in jsonschema.Draft7Validator(schema).iter_errors(whc)]
    version = b.settings["versions"]["kubernetes"]
    scheduling = whc.get("spec", {}).get("schedulingOptions") or {}
    embedded = [(f"resources.{c}", v, "resourcerequirements") for c, v in
                (scheduling.get("resources") or {}).items()]
    embedded += [(f"containerTemplateAdditions.{c}", v, "container") for c, v in
                 (scheduling.get("containerTemplateAdditions") or {}).items()]
    if "podTemplateAdditions" in scheduling:
        embedded.append(("podTemplateAdditions", scheduling["podTemplateAdditions"], "podspec"))
    for where, value, kind in embedded:
        problems += [f"host/wasmcloudhostconfig.yaml schedulingOptions.{where}{path_of(e)}: {e.message}"
                     for e in k8s_type_errors(value, kind, version)]
    return problems


def check_platform(b: Bundle) -> list[str]:
    s, v = b.settings, b.platform
    nats = dig(v, "nats.config") or {}
    problems = []
    if not dig(nats, "cluster.enabled") or dig(nats, "cluster.replicas") != s["nats_servers"]:
        problems.append(f"platform: NATS must run as a cluster of cluster.yaml nats_servers "
                        f"({s['nats_servers']}) servers (nats.config.cluster)")
    if not dig(nats, "jetstream.enabled"):
        problems.append("platform: JetStream is off (nats.config.jetstream.enabled)")
    if not dig(nats, "jetstream.fileStore.pvc.enabled"):
        problems.append("platform: JetStream must store on persistent volumes "
                        "(nats.config.jetstream.fileStore.pvc.enabled)")
    if dig(nats, "jetstream.merge.domain") != s["jetstream_domain"]:
        problems.append(f"platform: the hub's JetStream domain must be {s['jetstream_domain']!r} "
                        "(nats.config.jetstream.merge.domain)")
    if not dig(nats, "leafnodes.enabled"):
        problems.append("platform: leaf nodes must be on: every host pod joins through one")
    problems += check_nats_authorization(v)
    if dig(v, "nats.container.image.tag") != f"{s['versions']['nats']}-alpine":
        problems.append(f"platform: NATS image tag must be {s['versions']['nats']}-alpine "
                        "(nats.container.image.tag)")
    if dig(v, "wadm.wadm.image.tag") != s["versions"]["wadm"]:
        problems.append(f"platform: wadm image tag must be {s['versions']['wadm']}")
    server = dig(v, "wadm.wadm.config.nats.server") or ""
    if f".{s['namespace']}.svc" not in server:
        problems.append(f"platform: wadm's NATS server {server!r} is not in namespace {s['namespace']!r}")
    if dig(v, "host.enabled") or dig(v, "hostConfig.enabled"):
        problems.append("platform: the chart's host and hostConfig stay off "
                        "(hosts come from host/wasmcloudhostconfig.yaml)")
    if not dig(v, "operator.enabled"):
        problems.append("platform: the operator must be on")
    return problems


# NATS resolves includes against its config's folder, /etc/nats-config (the chart's ConfigMap);
# orders-nats-auth's server.conf is mounted beside it.
NATS_AUTH_MOUNT = "/etc/nats-auth"
NATS_AUTH_INCLUDE = "../nats-auth/server.conf"


def check_nats_authorization(v: dict) -> list[str]:
    """NATS admits only our operator's accounts: the include of orders-nats-auth's server.conf,
    mounted from its Secret where the include looks; wadm connects with its creds."""
    nats = dig(v, "nats") or {}
    problems = []
    includes = [value for key, value in (dig(nats, "config.merge") or {}).items()
                if key.endswith("$include")]
    if NATS_AUTH_INCLUDE not in includes:
        problems.append(f"platform: NATS must include {NATS_AUTH_INCLUDE} (nats.config.merge "
                        "00$include), else it admits anonymous clients")
    mounts = {p["value"]["name"]: p["value"].get("mountPath") for p in dig(nats, "container.patch") or []
              if p.get("path") == "/volumeMounts/-"}
    volumes = {p["value"]["name"]: dig(p["value"], "secret.secretName")
               for p in dig(nats, "podTemplate.patch") or [] if p.get("path") == "/spec/volumes/-"}
    if not any(path == NATS_AUTH_MOUNT and volumes.get(name) == "orders-nats-server"
               for name, path in mounts.items()):
        problems.append(f"platform: Secret orders-nats-server must be mounted at {NATS_AUTH_MOUNT} "
                        "(nats.container.patch and nats.podTemplate.patch)")
    if dig(v, "wadm.wadm.config.nats.creds.secretName") != "orders-nats-wadm":
        problems.append("platform: wadm must connect with Secret orders-nats-wadm "
                        "(wadm.wadm.config.nats.creds.secretName)")
    return problems


def check_references(b: Bundle) -> list[str]:
    s, whc, app = b.settings, b.host_config, b.app
    spec = whc.get("spec", {})
    service = b.by_kind("Service", "orders-http")
    ingress, secret = b.by_kind("Ingress"), b.by_kind("Secret")
    problems = []

    # Namespace and lattice
    for name, obj in list(b.core.items()) + [("host/wasmcloudhostconfig.yaml", whc)]:
        if obj.get("kind") in NAMESPACED and dig(obj, "metadata.namespace") != s["namespace"]:
            problems.append(f"{name}: namespace must be {s['namespace']!r}")
    if dig(b.by_kind("Namespace"), "metadata.name") != s["namespace"]:
        problems.append(f"namespace.yaml: must create namespace {s['namespace']!r}")
    if spec.get("lattice") != s["lattice"]:
        problems.append(f"host config: lattice {spec.get('lattice')!r} is not {s['lattice']!r}")
    if dig(whc, "metadata.name") != s["host_config"]:
        problems.append(f"host config: name must be {s['host_config']!r} (cluster.yaml host_config)")
    if spec.get("version") != s["versions"]["host"]:
        problems.append(f"host config: version must be {s['versions']['host']!r}")
    host_image = f"{s['registry']}/{s['repository']}/orders-host:{s['tag']}"
    if spec.get("image") != host_image:
        problems.append(f"host config: image must be our host image {host_image} (push.sh): "
                        "upstream's serves none of the capabilities app/wadm.yaml asks for")
    if spec.get("natsLeafImage") != f"nats:{s['versions']['nats']}-alpine":
        problems.append(f"host config: natsLeafImage must be nats:{s['versions']['nats']}-alpine "
                        "(the operator's default is an older NATS)")
    if spec.get("jetstreamDomain", "default") != s["jetstream_domain"]:
        problems.append("host config: jetstreamDomain differs from cluster.yaml jetstream_domain")
    if spec.get("hostReplicas") != s["hosts"]:
        problems.append(f"host config: hostReplicas must be cluster.yaml hosts ({s['hosts']})")
    for component in dig(app, "spec.components") or []:
        scalers = {t.get("type") for t in component.get("traits") or []} & {"spreadscaler", "daemonscaler"}
        if component.get("type") == "capability" and scalers != {"daemonscaler"}:
            problems.append(f"app/wadm.yaml: provider {component.get('name')} must run on every host "
                            "(one daemonscaler), so that losing a host loses none of its links")
    address = spec.get("natsAddress", "")
    if not re.fullmatch(rf"nats://nats\.{re.escape(s['namespace'])}\.svc(\.cluster\.local)?", address):
        problems.append(f"host config: natsAddress {address!r} must be nats://nats.<namespace>.svc"
                        "[.cluster.local], without a port (the operator appends the leaf port)")
    if spec.get("allowLatest"):
        problems.append("host config: allowLatest must stay off (pinned refs only)")

    # The Service reaches the host pods on the HTTP provider's port
    selector = dig(service, "spec.selector") or {}
    pod_labels = {"app.kubernetes.io/name": "wasmcloud", "app.kubernetes.io/instance": s["host_config"]}
    pod_labels.update({f"host-label.k8s.wasmcloud.dev/{k}": v
                       for k, v in (spec.get("hostLabels") or {}).items()})
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        problems.append(f"service: selector {selector} does not select the host pods {pod_labels}")
    listeners = [p for p in provider_config(app) if "address" in p]
    if len(listeners) != 1:
        problems.append("app/wadm.yaml: expected exactly one HTTP listener address")
    else:
        host, _, port = listeners[0]["address"].rpartition(":")
        if host != "0.0.0.0":
            problems.append(f"app/wadm.yaml: the HTTP provider must listen on 0.0.0.0, not {host}")
        target_ports = [p.get("targetPort") for p in dig(service, "spec.ports") or []]
        if int(port) not in target_ports or int(port) != s["http_port"]:
            problems.append(f"service: targetPort {target_ports} must be the HTTP provider's port {port}")
    if dig(service, "metadata.name") == dig(app, "metadata.name"):
        problems.append("service: must not be named after the application (the operator owns that name)")

    # The Ingress serves exactly the application's paths through our Service
    app_paths = sorted(p["path"] for p in link_source_config(app) if "path" in p)
    rules = dig(ingress, "spec.rules") or []
    ingress_paths = sorted(p["path"] for r in rules for p in dig(r, "http.paths") or [])
    if ingress_paths != app_paths:
        problems.append(f"ingress: paths {ingress_paths} must be the application's {app_paths}")
    port_names = {p.get("name") for p in dig(service, "spec.ports") or []}
    for r in rules:
        if r.get("host") != s["ingress_host"]:
            problems.append(f"ingress: host {r.get('host')!r} is not {s['ingress_host']!r}")
        for p in dig(r, "http.paths") or []:
            backend = dig(p, "backend.service") or {}
            if backend.get("name") != dig(service, "metadata.name") or \
                    dig(backend, "port.name") not in port_names:
                problems.append(f"ingress: {p.get('path')} does not lead to service "
                                f"{dig(service, 'metadata.name')} by a port it has")

    # TLS and per-client limits at the Ingress; the provider behind it leaves per-address limits to it
    tls = dig(ingress, "spec.tls") or []
    if [(t.get("hosts"), t.get("secretName")) for t in tls] != [([s["ingress_host"]], s["ingress_tls_secret"])]:
        problems.append(f"ingress: must serve TLS for {s['ingress_host']} from Secret {s['ingress_tls_secret']!r} "
                        "(cluster.yaml ingress_tls_secret)")
    annotations = dig(ingress, "metadata.annotations") or {}
    if annotations.get("nginx.ingress.kubernetes.io/limit-rps") != str(s["ingress_rate_per_client"]):
        problems.append("ingress: nginx.ingress.kubernetes.io/limit-rps must be cluster.yaml "
                        f"ingress_rate_per_client ({s['ingress_rate_per_client']})")
    if annotations.get("nginx.ingress.kubernetes.io/force-ssl-redirect") != "true":
        problems.append("ingress: plain HTTP must be redirected to HTTPS (force-ssl-redirect)")
    per_address = [p.get("rate_per_client") for p in provider_config(app) if "address" in p]
    if per_address != ["0"]:
        problems.append("app/wadm.yaml: behind the Ingress the HTTP provider's rate_per_client must be 0 "
                        f"(every request comes from the controller), found {per_address}")

    # Artifacts: pinned, one registry, pulled as the host is told to
    images = [dig(c, "properties.image") for c in dig(app, "spec.components") or []]
    for image in images:
        if image and image.startswith(BUILTIN_PREFIX):
            continue  # served by the host image itself
        if not image or image.startswith("file://"):
            problems.append(f"app/wadm.yaml: {image!r} is not an OCI ref (a local file left?)")
            continue
        if not image.startswith(f"{s['registry']}/"):
            problems.append(f"app/wadm.yaml: {image} is not in registry {s['registry']}")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            problems.append(f"app/wadm.yaml: {image} is not pinned to a tag")
    registry_auths = json.loads(dig(secret, "stringData..dockerconfigjson") or "{}").get("auths", {})
    if list(registry_auths) != [s["registry"]]:
        problems.append(f"registry credentials: exactly one registry, {s['registry']}, "
                        f"(the operator accepts one), found {list(registry_auths)}")
    if spec.get("secretName") != "orders-nats-host":
        problems.append("host config: secretName must be orders-nats-host, the NATS creds each "
                        "pod's leaf node joins the hub with (the hub admits no anonymous client)")
    pull_secrets = [p.get("name") for p in
                    dig(spec, "schedulingOptions.podTemplateAdditions.imagePullSecrets") or []]
    if pull_secrets != [spec.get("registryCredentialsSecret")]:
        problems.append("host config: the nodes pull the host image with the host's registry "
                        "credentials (schedulingOptions.podTemplateAdditions.imagePullSecrets "
                        f"[{spec.get('registryCredentialsSecret')}]), found {pull_secrets}")
    if spec.get("registryCredentialsSecret") not in (None, dig(secret, "metadata.name")):
        problems.append("host config: registryCredentialsSecret names no Secret we ship")
    if s["registry"] not in (spec.get("allowedInsecure") or []) and not spec.get("registryCredentialsSecret"):
        problems.append("host config: the registry is neither allowedInsecure nor has credentials")

    # The in-cluster registry, when cluster.yaml points at one, answers where the hosts look
    in_cluster = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)", s["registry"])
    if in_cluster:
        name, namespace, port = in_cluster.group(1), in_cluster.group(2), int(in_cluster.group(3))
        registry = next((o for o in b.core.values() if o.get("kind") == "Service"
                         and dig(o, "metadata.name") == name), None)
        deployment = next((o for o in b.core.values() if o.get("kind") == "Deployment"), None)
        if registry is None or namespace != s["namespace"] or \
                port not in [p.get("port") for p in dig(registry, "spec.ports") or []]:
            problems.append(f"registry: no Service {name}:{port} in namespace {namespace} "
                            "(registry/registry.yaml) for cluster.yaml's registry")
        elif deployment is None or any(dig(deployment, "spec.template.metadata.labels").get(k) != v
                                       for k, v in (dig(registry, "spec.selector") or {}).items()):
            problems.append("registry: its Service selects no pod of its Deployment")

    # Providers keep their data in the hub's JetStream domain, through the pod's leaf node
    for properties in provider_config(app):
        if "cluster_uri" in properties:
            if properties.get("js_domain") != s["jetstream_domain"]:
                problems.append("app/wadm.yaml: a JetStream provider without js_domain "
                                f"{s['jetstream_domain']!r} keeps its data in the pod's ephemeral leaf")
            if str(properties.get("replicas")) != str(s["jetstream_replicas"]):
                problems.append(f"app/wadm.yaml: JetStream providers must keep {s['jetstream_replicas']} "
                                "replicas of their streams and buckets")
            if properties["cluster_uri"] != s["leaf_nats_url"]:
                problems.append(f"app/wadm.yaml: cluster_uri must be the pod's leaf {s['leaf_nats_url']}")
    return problems


def check_push_script(b: Bundle) -> list[str]:
    result = subprocess.run(["bash", "-n", str(b.k8s / "push.sh")], capture_output=True, text=True)
    return [f"push.sh: {result.stderr.strip()}"] if result.returncode else []


CHECKS: list[tuple[str, Callable[[Bundle], list[str]]]] = [
    ("settings", check_settings),
    ("generated", check_generated),
    ("wadm", check_wadm),
    ("oam-schema", check_oam_schema),
    ("core-kinds", check_core_kinds),
    ("host-config", check_host_config),
    ("platform", check_platform),
    ("references", check_references),
    ("push-script", check_push_script),
]


def validate(root: Path) -> list[str]:
    try:
        bundle = Bundle(root)
    except (OSError, yaml.YAMLError) as e:
        return [f"cannot read deploy/k8s: {e}"]
    problems = []
    for name, check in CHECKS:
        try:
            found = check(bundle)
        except (RuntimeError, KeyError, TypeError, ValueError, StopIteration) as e:
            found = [f"{name} could not run: {e!r}"]
        print(f"  {'ok  ' if not found else 'FAIL'} {name}")
        for problem in found:
            print(f"       - {problem}")
        problems += found
    return problems


# ---------------------------------------------------------------- helpers


def k8s_type_errors(value: Any, kind: str, version: str) -> list[jsonschema.ValidationError]:
    """Errors of `value` as the Kubernetes type `kind` (strict), with nothing required: the
    operator fills in what it owns (a container's name, a pod's containers)."""
    latest = [v for v in kubernetes_validate.utils.all_versions()
              if kubernetes_validate.utils.major_minor(v) <= version][-1]
    directory = f"kubernetes-json-schema/v{latest}-local-strict"
    schema = copy.deepcopy(schema_contents(f"{directory}/{kind}-v1.json", version))
    schema.pop("required", None)
    definitions = schema_contents(f"{directory}/_definitions.json", version)
    registry = referencing.Registry().with_resources([
        ("_definitions.json", referencing.Resource.from_contents(definitions)),
    ])
    registry = referencing.Resource.from_contents(schema) @ registry
    return list(jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(value))


def provider_config(app: dict) -> list[dict]:
    return [cfg.get("properties") or {}
            for c in dig(app, "spec.components") or [] if c.get("type") == "capability"
            for cfg in dig(c, "properties.config") or []]


def link_source_config(app: dict) -> list[dict]:
    return [cfg.get("properties") or {}
            for c in dig(app, "spec.components") or []
            for t in c.get("traits") or [] if t.get("type") == "link"
            for cfg in dig(t, "properties.source.config") or []]


def dig(obj: Any, dotted: str) -> Any:
    """obj["a"]["b"] for "a.b"; an empty segment ("a..b") stands for a key starting with a dot."""
    keys, parts = [], dotted.split(".")
    while parts:
        part = parts.pop(0)
        if part == "" and parts:
            part = "." + parts.pop(0)
        keys.append(part)
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def path_of(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def tool(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        sys.exit(f"{variable} is not set (make test sets it)")
    return value


def run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}")
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE.parent.parent)
    args = parser.parse_args()
    problems = validate(args.root)
    if problems:
        print(f"deploy/k8s: {len(problems)} problem(s)")
        return 1
    print("deploy/k8s: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
