"""deploy/federation/: one gateway per region group (Americas, Europe, Asia-Pacific), each a Kubernetes overlay of deploy/k8s.

Each gateway's ``regions.toml`` is the Kubernetes configuration (S3 stores,
Secret-mounted key paths) with the other gateways' regions served by them
(``owner``), its own control and audit buckets, ``[federation]`` and
``[peers.*]``. They are generated: after changing the repository's
regions.toml, run ``python -m tests.ops.test_deploy_federation``.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from gateway.config import load_config
from tests.ops.test_deploy import EXPORT, render_k8s
from tests.support import ROOT, SHIPPED_CONFIG

FEDERATION = ROOT / "deploy" / "federation"
# gateway -> (its regions, the region of its control store and ledger bucket, its public URL)
GATEWAYS = {
    "americas": (("us-east-1",), "us-east-1", "https://gateway.americas.example.com"),
    "europe": (("eu-west-1", "eu-central-1", "eu-west-2"), "eu-west-1", "https://gateway.europe.example.com"),
    "apac": (("ap-southeast-2",), "ap-southeast-2", "https://gateway.apac.example.com"),
}
GENERATED = "# Generated from the repository's regions.toml by `python -m tests.ops.test_deploy_federation`; edit that file, not this one.\n"


def render_gateway(shipped: str, gateway: str) -> str:
    """The regions.toml of ``gateway``: the Kubernetes one, serving only its regions, with its peers."""
    text = render_k8s(shipped).split("\n", 1)[1]  # without the Kubernetes file's own header
    _, home, _ = GATEWAYS[gateway]
    for owner, (regions, _, _) in GATEWAYS.items():
        if owner == gateway:
            continue
        for region in regions:
            store = f'store = {{ kind = "s3", bucket = "exampleco-records-{region}", region_name = "{region}", object_lock = true }}'
            local = f'{store}\ntag_key = "keys/tag-{region}.key"'
            assert local in text, region
            text = text.replace(local, f'owner = "{owner}"')
    control = 'store = { kind = "s3", bucket = "exampleco-gateway-control", region_name = "us-east-1" }'
    assert control in text and EXPORT in text
    text = text.replace(control, f'store = {{ kind = "s3", bucket = "exampleco-gateway-control-{gateway}", region_name = "{home}" }}')
    ledger = f'"exampleco-audit-ledger-{gateway}", region_name = "{home}"'
    text = text.replace(EXPORT, EXPORT.replace('"exampleco-audit-ledger", region_name = "us-east-1"', ledger))
    text += f'\n[federation]\nid = "{gateway}"\nkey = "keys/federation.key"\n'
    for peer, (_, _, url) in GATEWAYS.items():
        if peer != gateway:
            text += f'\n[peers.{peer}]\nurl = "{url}"\nkey = "keys/peer-{peer}.pub"\n'
    return GENERATED + text


def write() -> None:
    shipped = SHIPPED_CONFIG.read_text()
    for gateway in GATEWAYS:
        (FEDERATION / gateway / "regions.toml").write_text(render_gateway(shipped, gateway))


@pytest.mark.parametrize("gateway", list(GATEWAYS))
def test_each_gateways_configuration_is_generated_from_the_shipped_one_and_loads(gateway: str) -> None:
    path = FEDERATION / gateway / "regions.toml"
    assert path.read_text() == render_gateway(SHIPPED_CONFIG.read_text(), gateway), "out of date: run `python -m tests.ops.test_deploy_federation`"
    config = load_config(path)
    assert (set(config.local_regions), config.federation and config.federation.id) == (set(GATEWAYS[gateway][0]), gateway)


def test_every_region_is_served_by_exactly_one_gateway_and_each_gateway_peers_with_the_others() -> None:
    configs = {gateway: load_config(FEDERATION / gateway / "regions.toml") for gateway in GATEWAYS}
    served = sorted(region for config in configs.values() for region in config.local_regions)
    assert served == sorted(load_config(SHIPPED_CONFIG).regions)
    for gateway, config in configs.items():
        assert set(config.peers) == set(GATEWAYS) - {gateway}
        assert all(config.regions[r].owner == owner for owner, (regions, _, _) in GATEWAYS.items() if owner != gateway for r in regions)


@pytest.mark.parametrize("gateway", list(GATEWAYS))
def test_each_gateways_overlay_gives_the_deployment_its_own_configuration(gateway: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run([kubectl, "kustomize", str(FEDERATION / gateway)], capture_output=True, text=True, check=True).stdout
    documents = list(yaml.safe_load_all(rendered))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    config_map = next(v["configMap"]["name"] for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    served = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == config_map)["data"]["regions.toml"]
    assert served == (FEDERATION / gateway / "regions.toml").read_text()


if __name__ == "__main__":
    write()
    print(f"wrote {', '.join(str(FEDERATION / g / 'regions.toml') for g in GATEWAYS)}")
