"""The alert rules pass promtool (syntax, and one unit test per alert), and their Kubernetes
forms never drift from them; the dashboard is well formed. (Whether every dashboard query names
a metric the gateway exports is checked against a running gateway in
tests/integration/test_monitoring.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

from gateway.devstack import executable

MONITORING = Path(__file__).parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "alerts.yaml"
KUBERNETES_VERSION = "1.30.0"


def promtool(*args: str) -> str:
    result = subprocess.run(
        [executable("promtool"), *args], capture_output=True, text=True, cwd=MONITORING
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def test_rules_pass_promtool_check() -> None:
    assert f"SUCCESS: {len(alert_names())} rules found" in promtool("check", "rules", RULES.name)


def test_every_alert_has_a_passing_promtool_unit_test() -> None:
    promtool("test", "rules", "alerts-test.yaml")
    tests = yaml.safe_load((MONITORING / "alerts-test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == alert_names()
    # Each alert is seen firing somewhere in its test, not only staying quiet.
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert firing == alert_names()


def test_kubernetes_forms_are_the_rules_file() -> None:
    configmap = yaml.safe_load((MONITORING / "kubernetes" / "alerts-configmap.yaml").read_text())
    kubernetes_validate.validate(configmap, KUBERNETES_VERSION, strict=True)
    assert configmap["data"] == {"upload-gateway-alerts.yaml": RULES.read_text()}
    rule = yaml.safe_load((MONITORING / "kubernetes" / "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    kustomization = yaml.safe_load((MONITORING / "kubernetes" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["alerts-configmap.yaml"]


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["title"], panel
        assert panel["description"], panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
