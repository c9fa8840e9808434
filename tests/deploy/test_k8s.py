"""deploy/k8s/: every manifest validates against the Kubernetes API schemas, offline.

``kubernetes-validate`` (in the test extras) ships the schemas, so no cluster is needed; the
test skips when it is not installed. A few checks on top say what the example promises.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from conftest import REPO

kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (in hpsearch[test])")

K8S = REPO / "deploy" / "k8s"
VERSIONS = ["1.29.0", "1.33.0"]  # an older supported release and a recent one


def resources() -> dict[str, list[dict[str, Any]]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
            for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    found = resources()
    assert set(found) >= {"postgres.yaml", "storage-proxy.yaml", "dashboard.yaml", "workers-job.yaml",
                          "secret.example.yaml"}
    for name, docs in found.items():
        for doc in docs:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as err:
                raise AssertionError(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {err.message}") from None


def test_the_example_holds_together() -> None:
    by_kind = {(d["kind"], d["metadata"]["name"]): d for docs in resources().values() for d in docs}
    job = by_kind[("Job", "hpsearch-digits")]["spec"]
    assert job["parallelism"] >= 2 and job["completions"] == job["parallelism"]
    worker = job["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    proxy = by_kind[("Service", "hpsearch-proxy")]["spec"]["ports"][0]["port"]
    assert env["HPSEARCH_STORAGE"] == f"grpc://hpsearch-proxy:{proxy}"
    assert worker["args"][:2] == ["run", "digits"]
    assert by_kind[("StatefulSet", "postgres")]["spec"]["volumeClaimTemplates"]
    for kind in ("Service",):
        assert all(d["spec"].get("type", "ClusterIP") == "ClusterIP" for (k, _), d in by_kind.items() if k == kind)
    # the password only ever comes from the Secret
    for (kind, name), doc in by_kind.items():
        if kind in ("Deployment", "StatefulSet"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    if "PASSWORD" in e["name"]:
                        assert e["valueFrom"]["secretKeyRef"]["name"] == "hpsearch-db", (name, e)
    # the proxy token only ever comes from its Secret, in the proxy and in every worker
    for key in (("Deployment", "hpsearch-proxy"), ("Job", "hpsearch-digits")):
        (container,) = by_kind[key]["spec"]["template"]["spec"]["containers"]
        (token,) = [e for e in container["env"] if e["name"] == "HPSEARCH_PROXY_TOKEN"]
        assert token["valueFrom"]["secretKeyRef"] == {"name": "hpsearch-proxy", "key": "token"}
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(n for n in resources() if n != "secret.example.yaml")


def test_the_proxy_command_is_the_cli_s() -> None:
    """The proxy Deployment's args are options `hpsearch storage-proxy` has."""
    from typer.testing import CliRunner

    from hpsearch.cli import app

    out = CliRunner().invoke(app, ["storage-proxy", "--help"]).output
    args = yaml.safe_load_all((K8S / "storage-proxy.yaml").read_text())
    deploy = next(d for d in args if d and d["kind"] == "Deployment")
    given = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert given[0] == "storage-proxy"
    assert all(opt in out for opt in given if opt.startswith("--"))


def test_no_pod_runs_as_root_and_every_image_is_pinned() -> None:
    """Every container ran as root with no securityContext, and `postgres:15` moved under the
    example (issue 34, attack 10)."""
    for docs in resources().values():
        for doc in docs:
            if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
                continue
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
            for c in pod["containers"]:
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
                name, _, tag = c["image"].partition(":")
                assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), c["image"]
                if name == "postgres":
                    assert tag.count(".") >= 1, c["image"]  # a release, not a moving major tag
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "\nUSER 1000:1000\n" in dockerfile and "FROM python:3.11.11-" in dockerfile


def test_only_the_workers_and_the_dashboard_reach_the_proxy() -> None:
    by_kind = {(d["kind"], d["metadata"]["name"]): d for docs in resources().values() for d in docs}
    policy = by_kind[("NetworkPolicy", "hpsearch-proxy")]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "hpsearch-proxy"}
    (rule,) = policy["ingress"]
    admitted = {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]}
    assert admitted == {"hpsearch-worker", "hpsearch-dashboard"} and rule["ports"] == [{"port": 13000, "protocol": "TCP"}]
    labels = {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
              for (k, _), d in by_kind.items() if k in ("Deployment", "Job", "StatefulSet")}
    assert admitted <= labels  # the selectors name pods that exist
