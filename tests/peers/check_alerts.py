#!/usr/bin/env python3
"""Checks the Prometheus alert rules and the Grafana dashboard shipped in examples/.

  check_alerts.py [--require-promtool] [--rules FILE] [--dashboard FILE] [SCRAPE]

1. With `promtool` on the PATH (Debian package `prometheus`): `promtool check rules`,
   then `promtool test rules` on the scenarios below (the rules' annotations left
   out: the scenarios check when each alert fires and with which labels), and the
   dashboard's queries parsed by promtool (Grafana's variables replaced).
   Without it, says so and goes on (`--require-promtool`: fails instead).
2. Always: every rule has alert, expr, for, labels.severity (critical, warning or
   info), annotations.summary, description and runbook_url; each runbook_url's
   anchor exists in docs/operations.md; alert names are unique. The dashboard is
   valid JSON with schemaVersion 39, the DS_PROMETHEUS input, the `datasource` and
   `instance` variables, unique panel ids, and a PromQL expression in each target.
3. With SCRAPE, a file holding the text of a live scrape of relance's /metrics:
   every relance_* and process_* metric the alert expressions and the dashboard's
   targets name is exposed there (declared by # TYPE or # HELP, or with samples;
   NAME_bucket, NAME_sum and NAME_count stand for the histogram NAME):

     curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/metrics > scrape.txt
     python3 tests/peers/check_alerts.py scrape.txt

Needs PyYAML (`python3 -m pip install pyyaml`, or Debian's python3-yaml).
Exit 0 when everything holds; 1 with every problem found; 2 when the check cannot run.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import yaml
except ImportError:
    print("check_alerts.py needs PyYAML: python3 -m pip install pyyaml", file=sys.stderr)
    sys.exit(2)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "examples" / "grafana" / "relance-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
SEVERITIES = {"critical", "warning", "info"}

# Scenarios for `promtool test rules`: input series, then which alerts fire (with all
# their labels) at a given time, or that none does. One sample a minute.
J = 'job="relance"'


def slow_route(method, route):
    """Series of a route answering 10 requests a minute, 9 of them in 1 to 5 s."""
    labels = f'{J},instance="a:8080",method="{method}",route="{route}",status="200"'
    name = "relance_http_request_duration_seconds"
    return [{"series": f"{name}_bucket{{{labels},le=\"1\"}}", "values": "0+1x40"},
            {"series": f"{name}_bucket{{{labels},le=\"5\"}}", "values": "0+10x40"},
            {"series": f"{name}_bucket{{{labels},le=\"+Inf\"}}", "values": "0+10x40"},
            {"series": f"{name}_count{{{labels}}}", "values": "0+10x40"}]


SCENARIOS = [
    {
        "name": "no scheduler leader among two instances",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_scheduler_leader{{{J},instance="a:8080"}}', "values": "1 1 0x20"},
            {"series": f'relance_scheduler_leader{{{J},instance="b:8080"}}', "values": "0x22"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "RelanceNoSchedulerLeader", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "RelanceNoSchedulerLeader",
             "exp_alerts": [{"exp_labels": {"severity": "critical", "job": "relance"}}]},
            {"eval_time": "10m", "alertname": "RelanceSeveralSchedulerLeaders", "exp_alerts": []},
        ],
    },
    {
        "name": "two scheduler leaders",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_scheduler_leader{{{J},instance="a:8080"}}', "values": "1x20"},
            {"series": f'relance_scheduler_leader{{{J},instance="b:8080"}}', "values": "1x20"},
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "RelanceSeveralSchedulerLeaders",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance"}}]},
            {"eval_time": "10m", "alertname": "RelanceNoSchedulerLeader", "exp_alerts": []},
        ],
    },
    {
        "name": "dead letters and held actions, reported alike by two instances, alert once",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_dead_letters{{{J},instance="a:8080"}}', "values": "0 0 2x20"},
            {"series": f'relance_dead_letters{{{J},instance="b:8080"}}', "values": "0 0 2x20"},
            {"series": f'relance_actions{{{J},instance="a:8080",kind="formal_notice",status="held"}}', "values": "1x20"},
            {"series": f'relance_actions{{{J},instance="a:8080",kind="insurer_handover",status="held"}}', "values": "1x20"},
            {"series": f'relance_actions{{{J},instance="b:8080",kind="formal_notice",status="held"}}', "values": "1x20"},
            {"series": f'relance_actions{{{J},instance="b:8080",kind="insurer_handover",status="held"}}', "values": "1x20"},
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "RelanceDeadLetters", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "RelanceDeadLetters",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance"}}]},
            {"eval_time": "10m", "alertname": "RelanceActionsHeld",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance"}}]},
        ],
    },
    {
        "name": "due actions and no delivery attempt: the queue is not draining",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_queue_depth{{{J},instance="a:8080"}}', "values": "3x60"},
            {"series": f'relance_deliveries_total{{{J},instance="a:8080",kind="email",outcome="sent"}}', "values": "0+1x20 20x40"},
        ],
        "alert_rule_test": [
            {"eval_time": "40m", "alertname": "RelanceQueueNotDraining", "exp_alerts": []},
            {"eval_time": "55m", "alertname": "RelanceQueueNotDraining",
             "exp_alerts": [{"exp_labels": {"severity": "critical", "job": "relance"}}]},
        ],
    },
    {
        "name": "due actions, deliveries going on: no alert",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_queue_depth{{{J},instance="a:8080"}}', "values": "3x60"},
            {"series": f'relance_deliveries_total{{{J},instance="a:8080",kind="email",outcome="sent"}}', "values": "0+1x60"},
        ],
        "alert_rule_test": [
            {"eval_time": "50m", "alertname": "RelanceQueueNotDraining", "exp_alerts": []},
            {"eval_time": "50m", "alertname": "RelanceQueueGrowing", "exp_alerts": []},
        ],
    },
    {
        "name": "a queue growing for two hours",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_queue_depth{{{J},instance="a:8080"}}', "values": "3x60 5+2x120"},
            {"series": f'relance_deliveries_total{{{J},instance="a:8080",kind="sms",outcome="sent"}}', "values": "0+1x180"},
        ],
        "alert_rule_test": [
            {"eval_time": "90m", "alertname": "RelanceQueueGrowing", "exp_alerts": []},
            {"eval_time": "150m", "alertname": "RelanceQueueGrowing",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance"}}]},
        ],
    },
    {
        "name": "a tick's spike drained in half an hour: no alert",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_queue_depth{{{J},instance="a:8080"}}',
             "values": "0x60 1000-33x30 0x120"},
            {"series": f'relance_deliveries_total{{{J},instance="a:8080",kind="email",outcome="sent"}}', "values": "0+30x210"},
        ],
        "alert_rule_test": [
            {"eval_time": f"{m}m", "alertname": "RelanceQueueGrowing", "exp_alerts": []}
            for m in (70, 90, 120, 150, 200)
        ],
    },
    {
        "name": "a transport failing, an insurer endpoint disabled, a rule file refused",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_transport_up{{{J},instance="a:8080",channel="smtp"}}', "values": "1 0x20"},
            {"series": f'relance_transport_up{{{J},instance="a:8080",channel="sms"}}', "values": "1x21"},
            {"series": f'relance_insurer_endpoint_up{{{J},instance="a:8080",insurer="coface-fr"}}', "values": "0x20"},
            {"series": f'relance_insurer_endpoint_up{{{J},instance="b:8080",insurer="coface-fr"}}', "values": "0x20"},
            {"series": f'relance_rule_script_stale{{{J},instance="a:8080",segment="smb"}}', "values": "0 1x20"},
            {"series": f'relance_rule_script_stale{{{J},instance="a:8080",segment="key_accounts"}}', "values": "0x21"},
        ],
        "alert_rule_test": [
            {"eval_time": "12m", "alertname": "RelanceTransportDown",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance",
                                            "instance": "a:8080", "channel": "smtp"}}]},
            {"eval_time": "5m", "alertname": "RelanceInsurerEndpointDisabled",
             "exp_alerts": [{"exp_labels": {"severity": "critical", "job": "relance",
                                            "insurer": "coface-fr"}}]},
            {"eval_time": "10m", "alertname": "RelanceRuleScriptStale",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance",
                                            "instance": "a:8080", "segment": "smb"}}]},
        ],
    },
    {
        "name": "a failed tick on a process running for days: its series appears with 1",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_ticks_total{{{J},instance="a:8080",segment="smb",status="done"}}', "values": "1x1700"},
            {"series": f'relance_ticks_total{{{J},instance="a:8080",segment="smb",status="failed"}}', "values": "_x120 1x1580"},
            {"series": f'process_start_time_seconds{{{J},instance="a:8080"}}', "values": "-864000x1700"},
        ],
        "alert_rule_test": [
            {"eval_time": "1h", "alertname": "RelanceTicksFailing", "exp_alerts": []},
            {"eval_time": "3h", "alertname": "RelanceTicksFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "segment": "smb"}}]},
            {"eval_time": "25h", "alertname": "RelanceTicksFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "segment": "smb"}}]},
            {"eval_time": "27h", "alertname": "RelanceTicksFailing", "exp_alerts": []},
        ],
    },
    {
        "name": "failed ticks: a second failure, and one after a restart",
        "interval": "1m",
        "input_series": [
            # smb: one failure at 0, a second at 20h; key_accounts: one failure at 0.
            # The process dies at 30h, starts again at 30h10m, and each segment fails
            # once at 31h13m (key_accounts' counter is back at the value it had: only
            # the process's start time shows the new failure). Nothing fails after.
            {"series": f'relance_ticks_total{{{J},instance="a:8080",segment="smb",status="failed"}}',
             "values": "1x1199 2x600 _x10 _x60 1x1500"},
            {"series": f'relance_ticks_total{{{J},instance="a:8080",segment="key_accounts",status="failed"}}',
             "values": "1x1800 _x10 _x60 1x1500"},
            {"series": f'process_start_time_seconds{{{J},instance="a:8080"}}',
             "values": "-864000x1800 _x10 108600x1600"},
        ],
        "alert_rule_test": [
            {"eval_time": "19h", "alertname": "RelanceTicksFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "segment": seg}}
                            for seg in ("smb", "key_accounts")]},
            {"eval_time": "26h", "alertname": "RelanceTicksFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "segment": "smb"}}]},
            {"eval_time": "45h", "alertname": "RelanceTicksFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "segment": seg}}
                            for seg in ("smb", "key_accounts")]},
            {"eval_time": "55h", "alertname": "RelanceTicksFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "segment": seg}}
                            for seg in ("smb", "key_accounts")]},
            {"eval_time": "56h", "alertname": "RelanceTicksFailing", "exp_alerts": []},
        ],
    },
    {
        "name": "rule errors, API 5xx, memory, file descriptors, an instance down",
        "interval": "1m",
        "input_series": [
            {"series": f'relance_rule_errors_total{{{J},instance="a:8080"}}', "values": "0x10 3x20"},
            {"series": f'relance_http_requests_total{{{J},instance="a:8080",status="200"}}', "values": "0+10x30"},
            {"series": f'relance_http_requests_total{{{J},instance="a:8080",status="503"}}', "values": "0+2x30"},
            {"series": f'process_resident_memory_bytes{{{J},instance="a:8080"}}', "values": "3e9x30"},
            {"series": f'process_open_fds{{{J},instance="a:8080"}}', "values": "950x30"},
            {"series": f'process_max_fds{{{J},instance="a:8080"}}', "values": "1024x30"},
            {"series": f'up{{{J},instance="b:8080"}}', "values": "1 0x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "RelanceRuleErrors", "exp_alerts": []},
            {"eval_time": "15m", "alertname": "RelanceRuleErrors",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance"}}]},
            {"eval_time": "20m", "alertname": "RelanceApiErrors",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance"}}]},
            {"eval_time": "20m", "alertname": "RelanceMemoryHigh",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "instance": "a:8080"}}]},
            {"eval_time": "20m", "alertname": "RelanceFileDescriptorsExhausted",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance", "instance": "a:8080"}}]},
            {"eval_time": "5m", "alertname": "RelanceInstanceDown",
             "exp_alerts": [{"exp_labels": {"severity": "critical", "job": "relance", "instance": "b:8080"}}]},
        ],
    },
    {
        "name": "a slow API route; slow batch, report and PDF routes left out",
        "interval": "1m",
        "input_series": [
            series
            for method, route in (("GET", "/v1/customers/{external_id}"), ("POST", "/v1/invoices/batch"),
                                  ("GET", "/v1/reports/{name}"), ("GET", "/reports/{name}"),
                                  ("GET", "/customers/{id}/statement.pdf"))
            for series in slow_route(method, route)
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": "RelanceApiSlow",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "relance",
                                            "route": "/v1/customers/{external_id}"}}]},
        ],
    },
]


def metric_names(expr):
    """The relance_* and process_* metric names a PromQL expression reads."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"`[^`]*`", "``", s)
    s = re.sub(r"\{[^{}]*\}", "{}", s)
    return set(re.findall(r"(?<![\w:$])((?:relance|process)_[A-Za-z0-9_:]*)", s))


def load_rules(path, problems):
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"{path}: cannot read the rules: {e}")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list) or not doc["groups"]:
        problems.append(f"{path}: expected a mapping with a non-empty list `groups`")
        return None
    return doc


def anchors_of(markdown):
    """Fragment ids a Markdown file offers: explicit ids, and its headings' slugs."""
    ids = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', markdown))
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        m = None if in_code else re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            ids.add(slug)
    return ids


def check_rules(doc, path, problems):
    """Structure of every rule; returns {alert name: expr}."""
    anchors = anchors_of(OPERATIONS.read_text(encoding="utf-8"))
    alerts = {}
    for gi, group in enumerate(doc["groups"]):
        where = f"{path}: groups[{gi}]"
        if not isinstance(group, dict) or not group.get("name"):
            problems.append(f"{where}: a group needs a name")
            continue
        where = f"{path}: group {group['name']}"
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problems.append(f"{where}: no rules")
            continue
        for ri, rule in enumerate(rules):
            if not isinstance(rule, dict):
                problems.append(f"{where}: rules[{ri}] is not a mapping")
                continue
            name = rule.get("alert")
            if not name:
                problems.append(f"{where}: rules[{ri}] has no `alert` (recording rules do not belong here)")
                continue
            at = f"{where}: {name}"
            if name in alerts:
                problems.append(f"{at}: alert defined twice")
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{at}: no expr")
                expr = ""
            alerts[name] = expr
            if "for" not in rule:
                problems.append(f"{at}: no `for` (write `for: 0m` to fire at once)")
            labels = rule.get("labels") or {}
            if labels.get("severity") not in SEVERITIES:
                problems.append(f"{at}: labels.severity must be one of {sorted(SEVERITIES)}, not {labels.get('severity')!r}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not str(annotations.get(key) or "").strip():
                    problems.append(f"{at}: no annotations.{key}")
            url = str(annotations.get("runbook_url") or "")
            if url:
                page, _, fragment = url.partition("#")
                if not page.endswith("/operations.md") or not fragment:
                    problems.append(f"{at}: runbook_url {url} should point at an anchor of docs/operations.md")
                elif fragment not in anchors:
                    problems.append(f"{at}: runbook_url anchor #{fragment} is not in docs/operations.md")
    return alerts


def check_dashboard(path, problems):
    """Structure of the dashboard; returns {panel title: [expr, ...]}."""
    try:
        dash = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"{path}: not valid JSON: {e}")
        return {}
    if dash.get("schemaVersion") != 39:
        problems.append(f"{path}: schemaVersion is {dash.get('schemaVersion')!r}, expected 39")
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
               for i in dash.get("__inputs", [])):
        problems.append(f"{path}: no __inputs entry DS_PROMETHEUS for a Prometheus data source")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        problems.append(f"{path}: no templating variable `datasource` of type datasource")
    if "instance" not in variables:
        problems.append(f"{path}: no templating variable `instance`")
    exprs = {}
    ids = set()

    def walk(panels):
        for p in panels:
            pid = p.get("id")
            title = p.get("title") or f"panel {pid}"
            if pid in ids:
                problems.append(f"{path}: panel id {pid} used twice")
            ids.add(pid)
            if "gridPos" not in p:
                problems.append(f"{path}: panel {title!r} has no gridPos")
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            targets = p.get("targets") or []
            if not targets:
                problems.append(f"{path}: panel {title!r} has no targets")
            ds = (p.get("datasource") or {}).get("uid")
            if ds != "${datasource}":
                problems.append(f"{path}: panel {title!r} does not use the ${{datasource}} variable")
            for t in targets:
                expr = t.get("expr")
                if not isinstance(expr, str) or not expr.strip():
                    problems.append(f"{path}: panel {title!r} target {t.get('refId')} has no expr")
                    continue
                if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                    problems.append(f"{path}: panel {title!r} target {t.get('refId')}: unbalanced brackets in {expr}")
                exprs.setdefault(title, []).append(expr)

    walk(dash.get("panels", []))
    if not exprs:
        problems.append(f"{path}: no panel with a query")
    return exprs


def grafana_to_promql(expr):
    """A dashboard query with Grafana's variables replaced, for promtool to parse."""
    for var, value in (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1d"),
                       ("${job}", ".*"), ("${instance}", ".*"), ("$job", ".*"), ("$instance", ".*")):
        expr = expr.replace(var, value)
    return expr


def run_promtool(doc, rules_path, panels, problems):
    check = subprocess.run(["promtool", "check", "rules", str(rules_path)],
                           capture_output=True, text=True)
    out = (check.stdout + check.stderr).strip()
    print(out)
    if check.returncode != 0:
        problems.append(f"promtool check rules {rules_path} failed (exit {check.returncode})")
        return
    with tempfile.TemporaryDirectory(prefix="relance-alerts-") as tmp:
        # The dashboard's queries, parsed by promtool as recording rules.
        queries = [(title, expr) for title, exprs in panels.items() for expr in exprs]
        recording = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard_query_{i}", "expr": grafana_to_promql(expr)}
            for i, (_, expr) in enumerate(queries)]}]}
        (Path(tmp) / "dashboard.yml").write_text(yaml.safe_dump(recording, sort_keys=False), encoding="utf-8")
        parsed = subprocess.run(["promtool", "check", "rules", "dashboard.yml"], cwd=tmp,
                                capture_output=True, text=True)
        if parsed.returncode != 0:
            print((parsed.stdout + parsed.stderr).strip())
            problems.append("promtool cannot parse some dashboard queries (above; dashboard_query_N is the "
                            "N-th query: " + "; ".join(f"{i}: {t}" for i, (t, _) in enumerate(queries)) + ")")
        else:
            print(f"promtool: the dashboard's {len(queries)} queries parse")
        stripped = {"groups": [dict(g, rules=[{k: v for k, v in r.items() if k != "annotations"}
                                              for r in g["rules"]])
                               for g in doc["groups"]]}
        (Path(tmp) / "rules.yml").write_text(yaml.safe_dump(stripped, sort_keys=False), encoding="utf-8")
        tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                 "tests": [{k: v for k, v in s.items() if k != "name"} for s in SCENARIOS]}
        (Path(tmp) / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
        run = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp,
                             capture_output=True, text=True)
        if run.returncode != 0:
            print((run.stdout + run.stderr).strip())
            problems.append("promtool test rules: some scenarios failed (above); the scenarios, in order: "
                            + "; ".join(f"{i}: {s['name']}" for i, s in enumerate(SCENARIOS)))
        else:
            print(f"promtool test rules: {len(SCENARIOS)} scenarios passed")


def scrape_families(path, problems):
    """Names declared (# TYPE, # HELP) and sampled in a /metrics scrape, and the types."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        problems.append(f"{path}: cannot read the scrape: {e}")
        return None
    declared, sampled, types = set(), set(), {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            parts = line.split(None, 3)
            if len(parts) >= 3:
                declared.add(parts[2])
                if parts[1] == "TYPE" and len(parts) == 4:
                    types[parts[2]] = parts[3].strip()
        elif line and not line.startswith("#"):
            m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
            if m:
                sampled.add(m.group(0))
    if "relance_scheduler_leader" not in declared | sampled:
        problems.append(f"{path}: not a scrape of relance's /metrics (no relance_scheduler_leader); "
                        "was the token missing or refused?")
        return None
    return declared, sampled, types


def exposed(name, families):
    """Whether the scrape exposes `name`: as a sample or a declared family, a histogram's
    series standing for the histogram, a counter's or an info's samples for their family
    (declared with or without _total / _info, as the text formats differ)."""
    declared, sampled, types = families
    if name in declared or name in sampled:
        return True
    for suffix, kinds in (("_bucket", {"histogram"}), ("_sum", {"histogram", "summary"}),
                          ("_count", {"histogram", "summary"}), ("_total", {"counter"}),
                          ("_info", {"info"})):
        if name.endswith(suffix):
            family = name[: -len(suffix)]
            if types.get(family) in kinds or (suffix == "_bucket" and f"{family}_bucket" in sampled):
                return True
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scrape", nargs="?", help="a file holding the text of a scrape of relance's /metrics")
    ap.add_argument("--rules", type=Path, default=RULES)
    ap.add_argument("--dashboard", type=Path, default=DASHBOARD)
    ap.add_argument("--require-promtool", action="store_true", help="fail when promtool is not installed")
    args = ap.parse_args()

    problems = []
    doc = load_rules(args.rules, problems)
    alerts = check_rules(doc, args.rules, problems) if doc is not None else {}
    panels = check_dashboard(args.dashboard, problems)
    if doc is not None:
        if shutil.which("promtool"):
            run_promtool(doc, args.rules, panels, problems)
        elif args.require_promtool:
            problems.append("promtool is not installed (Debian: apt-get install prometheus)")
        else:
            print("promtool not found: promtool checks, the rule scenarios and the dashboard's queries "
                  "skipped (Debian: apt-get install prometheus)")
    print(f"{args.rules}: {len(alerts)} alerts; {args.dashboard}: "
          f"{sum(len(e) for e in panels.values())} queries in {len(panels)} panels")

    if args.scrape:
        families = scrape_families(args.scrape, problems)
        if families is not None:
            wanted = {}
            for name, expr in alerts.items():
                for m in metric_names(expr):
                    wanted.setdefault(m, []).append(f"alert {name}")
            for title, exprs in panels.items():
                for expr in exprs:
                    for m in metric_names(expr):
                        wanted.setdefault(m, []).append(f"panel {title!r}")
            missing = sorted(m for m in wanted if not exposed(m, families))
            for m in missing:
                users = sorted(set(wanted[m]))
                problems.append(f"{args.scrape}: metric {m} is not exposed, used by "
                                + ", ".join(users[:6]) + (f" and {len(users) - 6} more" if len(users) > 6 else ""))
            print(f"{args.scrape}: {len(wanted) - len(missing)} of the {len(wanted)} metrics used are exposed")

    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if problems:
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
