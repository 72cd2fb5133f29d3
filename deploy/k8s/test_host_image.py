"""The Kubernetes host image (host-image.sh) runs as wasmcloud-operator runs it and serves our
capabilities in its process, and push.sh pushes it with every component the cluster pulls. Run by
`make test` after `make build`:

  python -m unittest test_host_image   (in deploy/k8s, with NATS_SERVER_BIN and ORDERS_WASH set)

No container engine runs on our machines (their sandbox refuses containers their cgroups and
limits), so the image is unpacked with umoci, as a container runtime would unpack it, and its
command runs chrooted into that root file system as the image's user: what is tested is what the
image holds (the host, every library it loads, the CA bundle, a writable /tmp) and that the host
takes the operator's contract. That contract is operator 0.5's pod template (`src/controller.rs`,
`pod_template`): command `wasmcloud`, the observability flags, the WASMCLOUD_* variables it
derives from the spec, and the spec's own additions (host/wasmcloudhostconfig.yaml). Only the
ports differ: the pod's leaf node on 4222 and the admin port 8081 become free ports here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

import yaml

CHECKOUT = Path(__file__).resolve().parent.parent.parent
K8S = CHECKOUT / "deploy" / "k8s"
LATTICE = "default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, seconds: float, check, logs=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s{logs()}")


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None


def operator_container(spec: dict, nats_port: int, admin_port: int) -> tuple[list[str], dict]:
    """The host container's arguments and environment, as operator 0.5 derives them from `spec`."""
    observability = spec.get("observability") or {}
    args = []
    if observability.get("enable"):
        args.append("--enable-observability")
    if observability.get("endpoint"):
        args += ["--override-observability-endpoint", observability["endpoint"]]
    if observability.get("protocol"):
        args += ["--observability-protocol", observability["protocol"]]
    env = {
        "WASMCLOUD_STRUCTURED_LOGGING_ENABLED": str(spec.get("enableStructuredLogging", True)).lower(),
        "WASMCLOUD_LOG_LEVEL": spec["logLevel"],
        "WASMCLOUD_JS_DOMAIN": spec["jetstreamDomain"],
        "WASMCLOUD_LATTICE": spec["lattice"],
        "WASMCLOUD_LATTICE_PREFIX": spec["lattice"],
        "WASMCLOUD_NATS_HOST": "127.0.0.1",
        "WASMCLOUD_NATS_PORT": str(nats_port),
        "WASMCLOUD_RPC_TIMEOUT_MS": "4000",
        "WASMCLOUD_LABEL_kubernetes": "true",
    }
    if spec.get("allowedInsecure"):
        env["WASMCLOUD_OCI_ALLOWED_INSECURE"] = ",".join(spec["allowedInsecure"])
    if spec.get("registryCredentialsSecret"):
        # The one registry of the Secret (here the example's), as `configure_hosts` passes it.
        secret = yaml.safe_load((K8S / "host" / "registry-credentials.example.yaml").read_text())
        auths = json.loads(secret["stringData"][".dockerconfigjson"])["auths"]
        ((registry, credentials),) = auths.items()
        env["WASMCLOUD_OCI_REGISTRY"] = registry
        env["WASMCLOUD_OCI_REGISTRY_USER"] = credentials["username"]
        env["WASMCLOUD_OCI_REGISTRY_PASSWORD"] = credentials["password"]
    for key, value in (spec.get("hostLabels") or {}).items():
        env[f"WASMCLOUD_LABEL_{key}"] = value
    additions = spec["schedulingOptions"]["containerTemplateAdditions"]["wasmcloud"]
    for variable in additions.get("env", []):
        env[variable["name"]] = variable["value"]
    env["WASMCLOUD_HTTP_ADMIN"] = f"0.0.0.0:{admin_port}"
    return args, env


class TheHostImage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Path(tempfile.mkdtemp(prefix="orders-host-image-"))
        cls.processes: list[subprocess.Popen] = []
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls):
        # What push.sh would push (it builds the host image on the way): `would push FILE -> REF`.
        done = subprocess.run([K8S / "push.sh", "--dry-run"], capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"push.sh --dry-run failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
        dry_run = done.stdout
        cls.pushed = dict(line.removeprefix("would push ").split(" -> ")[::-1]
                          for line in dry_run.splitlines() if line.startswith("would push "))
        host_config = yaml.safe_load((K8S / "host" / "wasmcloudhostconfig.yaml").read_text())
        cls.spec = host_config["spec"]
        archive = Path(cls.pushed[cls.spec["image"]])
        layout = cls.work / "layout"
        layout.mkdir()
        subprocess.run(["tar", "-C", layout, "-xf", archive], check=True)
        index = json.loads((layout / "index.json").read_text())
        (manifest,) = index["manifests"]
        cls.config = cls.blob(layout, cls.blob(layout, manifest)["config"])["config"]
        bundle = cls.work / "bundle"
        tag = manifest["annotations"]["org.opencontainers.image.ref.name"]
        subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}", bundle],
                       check=True, stdout=subprocess.DEVNULL)
        cls.rootfs = bundle / "rootfs"

        cls.nats_port = free_port()
        store = cls.work / "jetstream"
        nats_conf = cls.work / "nats.conf"
        nats_conf.write_text(f'listen: 127.0.0.1:{cls.nats_port}\n'
                             f'jetstream {{ store_dir: "{store}", domain: default }}\n')
        cls.spawn("nats", [os.environ["NATS_SERVER_BIN"], "--config", nats_conf])
        wait_for("NATS listening", 20, lambda: cls.listening(cls.nats_port))

        cls.admin_port = free_port()
        args, env = operator_container(cls.spec, cls.nats_port, cls.admin_port)
        # The image's own variables, then the container's (Kubernetes puts both in the process).
        for variable in cls.config.get("Env", []):
            key, _, value = variable.partition("=")
            env.setdefault(key, value)
        # The pod pulls components from the registry; here the one component below is a file in
        # the image's /tmp, which the host loads only when allowed to.
        env["WASMCLOUD_ALLOW_FILE_LOAD"] = "true"
        user = cls.config["User"]
        if os.geteuid() == 0:
            run_as = [shutil.which("chroot"), f"--userspec={user}", cls.rootfs]
        else:
            # Without root, a user namespace maps this user to root in it, and the image's user is
            # not taken: everything else holds.
            run_as = [shutil.which("unshare"), "--map-root-user", "chroot", cls.rootfs]
        # The operator sets the container's command (`wasmcloud`), which replaces the entrypoint.
        cls.host = cls.spawn("host", [*run_as, "wasmcloud", *args], env=env,
                             cwd=cls.rootfs / cls.config["WorkingDir"].lstrip("/"))

        def ready() -> bool:
            if cls.host.poll() is not None:
                raise AssertionError(f"the host exited with {cls.host.returncode}{cls.host_log()}")
            return http_status(f"http://127.0.0.1:{cls.admin_port}/readyz") == 200

        wait_for("the host's /readyz answers 200", 60, ready, cls.host_log)

    @classmethod
    def tearDownClass(cls):
        for process in reversed(cls.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def host_log(cls) -> str:
        """The end of the host's log, for a failure's message."""
        log = cls.work / "host.log"
        return f"\n--- the host's log, last lines:\n{log.read_text()[-4000:]}" if log.exists() else ""

    @classmethod
    def spawn(cls, name: str, command: list, **kwargs) -> subprocess.Popen:
        log = cls.work / f"{name}.log"
        with log.open("w") as output:
            process = subprocess.Popen([str(part) for part in command], stdout=output,
                                       stderr=subprocess.STDOUT, **kwargs)
        cls.processes.append(process)
        return process

    @staticmethod
    def listening(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    @staticmethod
    def blob(layout: Path, descriptor: dict) -> dict:
        """The JSON document (manifest, config) an OCI descriptor points to in `layout`."""
        algorithm, digest = descriptor["digest"].split(":")
        return json.loads((layout / "blobs" / algorithm / digest).read_bytes())

    def wash(self, *args: str) -> dict:
        done = subprocess.run(
            [os.environ["ORDERS_WASH"], *args, "--ctl-host", "127.0.0.1", "--ctl-port",
             str(self.nats_port), "--lattice", LATTICE, "--output", "json"],
            capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("WASH_")})
        self.assertEqual(done.returncode, 0, f"wash {' '.join(args)}: {done.stderr}{done.stdout}")
        return json.loads(done.stdout)

    def inventory(self) -> dict:
        (host,) = self.wash("get", "hosts")["hosts"]
        return self.wash("get", "inventory", host["id"])["inventories"][0]

    def test_push_sh_pushes_the_host_image_and_every_component_the_cluster_pulls_and_no_more(self):
        app = yaml.safe_load((K8S / "app" / "wadm.yaml").read_text())
        pulled = {c["properties"]["image"] for c in app["spec"]["components"]
                  if not c["properties"]["image"].startswith("wasmcloud+builtin://")}
        self.assertEqual(set(self.pushed), pulled | {self.spec["image"]})

    def test_the_operators_command_is_the_image_and_runs_as_its_unprivileged_user(self):
        self.assertEqual(self.config["Entrypoint"], ["wasmcloud"])
        self.assertEqual(self.config["User"], "65532:65532")
        self.assertIsNone(self.host.poll(), "the host exited")
        if os.geteuid() == 0:
            status = Path(f"/proc/{self.host.pid}/status").read_text()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
            self.assertEqual(uids.split()[1:], ["65532"] * 4)

    def test_the_host_joins_the_lattice_with_the_operators_labels(self):
        (host,) = self.wash("get", "hosts")["hosts"]
        labels = host["labels"]
        self.assertEqual(labels.get("kubernetes"), "true")
        for key, value in self.spec["hostLabels"].items():
            self.assertEqual(labels.get(key), value)

    def test_the_host_serves_our_capabilities_in_its_process_and_a_component_through_them(self):
        host_id = self.inventory()["host_id"]
        http_port = free_port()
        self.wash("config", "put", "listener", "routing_mode=path",
                  f"address=127.0.0.1:{http_port}")
        self.wash("config", "put", "path-console", "path=/")
        # The pod's leaf node is on 4222 (app/wadm.yaml); this NATS elsewhere.
        self.wash("config", "put", "jetstream", f"cluster_uri=nats://127.0.0.1:{self.nats_port}",
                  "js_domain=default")
        for builtin, config in [("http-server", "listener"), ("keyvalue-jetstream", "jetstream"),
                                ("messaging-jetstream", "jetstream")]:
            self.wash("start", "provider", f"wasmcloud+builtin://{builtin}", builtin,
                      "--host-id", host_id, "--config", config, "--skip-wait")
        shutil.copy(CHECKOUT / "build" / "components" / "web.wasm", self.rootfs / "tmp" / "web.wasm")
        self.wash("start", "component", "file:///tmp/web.wasm", "web", "--host-id", host_id,
                  "--max-instances", "1")
        self.wash("link", "put", "http-server", "web", "wasi", "http", "--interface",
                  "incoming-handler", "--source-config", "path-console", "--link-name", "console")

        def providers_running() -> set[str]:
            return {p["id"] for p in self.inventory()["providers"]}

        wait_for("the three built-in capabilities running", 30, lambda: providers_running() == {
            "http-server", "keyvalue-jetstream", "messaging-jetstream"}, self.host_log)

        def console() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=2) as r:
                    return r.read() if r.status == 200 else None
            except OSError:
                return None

        wait_for("the console served through the built-in HTTP server", 30,
                 lambda: console() is not None, self.host_log)
        self.assertIn(b"<html", console().lower())
