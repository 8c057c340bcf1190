"""Every metric the dashboard and the alert rules query is one a running gateway exports
(read from its /metrics after some real traffic), so a renamed metric fails here, not on an
operator's blank panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Api

MONITORING = Path(__file__).parents[2] / "deploy" / "monitoring"
_METRIC = re.compile(r"\b(?:upload_gateway|process|python)_[a-z0-9_]+")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


async def exported_names(live: Api) -> set[str]:
    response = await live.client.get("/metrics")
    assert response.status == 200
    names = set()
    for family in text_string_to_metric_families(await response.text()):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_queries() -> dict[str, list[str]]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    queries = {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }
    queries["variable job"] = [v["definition"] for v in dashboard["templating"]["list"][1:]]
    return queries


def alert_queries() -> dict[str, list[str]]:
    groups = yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"]
    return {rule["alert"]: [rule["expr"]] for group in groups for rule in group["rules"]}


async def test_dashboard_and_alerts_query_only_exported_metrics(
    live: Api, project_name: str
) -> None:
    await live.create_session(project_name)  # S3 and index calls, a request per route kind
    assert (await live.client.get("/readyz")).status == 200
    exported = await exported_names(live)
    assert "upload_gateway_requests_total" in exported
    for title, expressions in {**dashboard_queries(), **alert_queries()}.items():
        named = {name for expr in expressions for name in _METRIC.findall(expr)}
        assert named, f"{title}: queries no gateway metric"
        assert named <= exported, f"{title}: {sorted(named - exported)} not exported"


async def test_a_redirect_is_counted_as_its_own_status_not_as_a_failure(
    live: Api, project_name: str
) -> None:  # R-W5: a raised 301 was counted (and logged) as 500, tripping 5xx alerts
    session = await live.create_session(project_name)
    stage = session["links"]["stage"]
    unnormalized = live.path(stage) + project_name.upper().replace("-", "_") + "/"
    before = await stage_project_requests(live)
    response = await live.client.get(unnormalized, allow_redirects=False)
    assert response.status == 301
    after = await stage_project_requests(live)
    assert after.get("301", 0) == before.get("301", 0) + 1, (before, after)
    assert after.get("500", 0) == before.get("500", 0), (before, after)


async def stage_project_requests(live: Api) -> dict[str, float]:
    """The stage project page's requests so far, by status (the gateway is shared)."""
    text = await (await live.client.get("/metrics")).text()
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "upload_gateway_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("route") == "stage:project"
    }
