#!/usr/bin/env python3
"""Crash test of `relance serve`: SIGKILL at random moments, restart, drain, reconcile.

  python3 tests/crash/crash_harness.py [RELANCE_BINARY] [--large] [options]

For each scenario (SQLite: one instance; PostgreSQL: two instances sharing a fresh
database), the harness

1. starts real local peers: an SMTP server (tests/peers/smtp_sink.py, aiosmtpd) that
   keeps every message with its Message-ID, and tests/crash/http_peer.py, the SMS
   gateway, the registered-mail provider, the call-task webhook receiver and the
   credit insurer's endpoint, which verifies Standard Webhooks signatures with the
   reference `standardwebhooks` library and records every request with its
   idempotency id;
2. generates a portfolio (`relance sample`), a relance.yaml in a temporary directory
   (rules of this repository, every kind of action delivered to the peers, no
   delivery hours, no contact budget, short lease and retry delays, ticks every few
   seconds) and imports the portfolio;
3. runs `relance serve`, SIGKILLs an instance at random moments N times, restarting it
   each time, then lets the service drain: no action planned, retrying or sending and a
   tick of every segment finished since the last restart;
4. reconciles every action of the action log (`relance actions list --format json`,
   `relance actions show ID --format json` for the ones needing their history) with
   what the peers received, prints the figures and exits 1 when an action was lost,
   delivered twice under different ids, resent where that is not allowed, left
   pending, or when relance exited by itself or reported an internal error.

Exit codes: 0 no failure; 1 a failure (the figures say which); 2 usage or set-up error.
"""
import argparse
import base64
import collections
import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SMTP_SINK = os.path.join(REPO, "tests", "peers", "smtp_sink.py")
HTTP_PEER = os.path.join(HERE, "http_peer.py")

KINDS = ["email", "sms", "call_task", "formal_notice", "insurer_handover"]
PENDING = ("planned", "retrying", "sending")
# Kinds whose interrupted sends are resent with the same id (channels.on_interrupted
# defaults); formal notices and insurer handovers are held for an operator instead.
RESENDING = {"email", "sms", "call_task"}
# The peer that receives each part of an action.
PART_OF_KIND = {"email": "email", "sms": "sms", "call_task": "call", "insurer_handover": "insurer"}
# The formal notices the repository's rules decide: delivery means by segment.
NOTICE_MEANS = {"smb": ["email", "registered_mail"], "key_accounts": ["registered_mail"], "public_sector": ["registered_mail"]}


def log(msg):
    print(msg, flush=True)


class SetupError(Exception):
    pass


# --------------------------------------------------------------------------- peers


class Peers:
    """The SMTP sink and the HTTP peer, as child processes stopped by closing stdin."""

    def __init__(self, workdir, secret, token, fail_rate, smtp_fail_first, seed):
        self.mail_dir = os.path.join(workdir, "peers", "smtp")
        self.http_log = os.path.join(workdir, "peers", "http.jsonl")
        os.makedirs(self.mail_dir, exist_ok=True)
        self.procs = []
        self.smtp_port = self._start(
            [sys.executable, SMTP_SINK, "--dir", self.mail_dir, "--fail-first", str(smtp_fail_first)],
            os.path.join(workdir, "peers", "smtp.log"),
        )
        self.http_port = self._start(
            [sys.executable, HTTP_PEER, "--log", self.http_log, "--secret", secret, "--token", token,
             "--fail-rate", str(fail_rate), "--seed", str(seed)],
            os.path.join(workdir, "peers", "http.log"),
        )

    def _start(self, argv, errlog):
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(errlog, "wb"), text=True)
        self.procs.append(p)
        line = p.stdout.readline().strip()
        if not line.isdigit():
            raise SetupError("peer %s did not start: %s" % (argv[1], open(errlog).read()[-2000:]))
        return int(line)

    def stop(self):
        for p in self.procs:
            try:
                p.stdin.close()
                p.wait(timeout=10)
            except Exception:  # noqa: BLE001 - a peer that hangs is killed
                p.kill()
                p.wait()

    def receipts(self):
        """Every message and request that arrived whole, as dicts with `part`, `key`."""
        out = []
        for name in sorted(os.listdir(self.mail_dir)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(self.mail_dir, name)
            with open(path, encoding="utf-8") as f:
                m = json.load(f)
            out.append({
                "part": "email", "id": m.get("message_id"), "key": key_of(m.get("message_id")),
                "accepted": True, "verified": True, "at": os.path.getmtime(path),
                "to": m.get("to"), "subject": m.get("subject"),
                "attachments": [a.get("filename") for a in m.get("attachments") or []],
            })
        endpoint_part = {"sms": "sms", "calls": "call", "insurer": "insurer", "registered-mail": "registered_mail"}
        if os.path.exists(self.http_log):
            with open(self.http_log, encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    r["part"] = endpoint_part.get(r["endpoint"], r["endpoint"])
                    r["key"] = key_of(r.get("id"))
                    out.append(r)
        return out


def key_of(message_id):
    """The action key an id derives from: `<planned.HEX@host>`, `msg_planned_HEX` and
    `planned:HEX` all give `planned:HEX`."""
    if not message_id:
        return None
    m = re.search(r"([a-z]+)[._:]([0-9a-f]{16,})", message_id)
    return "%s:%s" % (m.group(1), m.group(2)) if m else message_id


# ------------------------------------------------------------------ configuration


def top_level_blocks(text):
    """The top-level sections of a YAML file, as text, by key."""
    blocks, key = {}, None
    for line in text.splitlines(keepends=True):
        m = re.match(r"^([a-z_]+):", line)
        if m:
            key = m.group(1)
            blocks[key] = ""
        if key is not None and not line.startswith("#"):
            blocks[key] += line
    return blocks


def write_config(path, binary, database_url, peers, secret, token, args):
    default = run([binary, "config", "default"], env=clean_env()).stdout
    blocks = top_level_blocks(default)
    missing = [k for k in ("company", "timezone", "calendar", "late_payment") if k not in blocks]
    if missing:
        raise SetupError("`relance config default` has no section %s" % ", ".join(missing))
    rules = os.path.join(REPO, "rules")
    every = "*/%d * * * * *" % args.tick_every
    hp = "http://127.0.0.1:%d" % peers.http_port
    sms_body = ('{"to": "{{ to }}", "text": "{{ text }}", "ref": "{{ idempotency_key }}", '
                '"customer": "{{ customer }}", "action_id": "{{ action_id }}"}')
    cfg = f"""# Generated by tests/crash/crash_harness.py: every kind of action goes to a local peer.
database:
  url: {database_url}
  max_connections: 8

{blocks['company']}
{blocks['timezone']}
{blocks['calendar']}
{blocks['late_payment']}
segments:
  smb: {{ rules: {rules}/smb.rhai, schedule: "{every}" }}
  key_accounts: {{ rules: {rules}/key_accounts.rhai, schedule: "{every}" }}
  public_sector: {{ rules: {rules}/public_sector.rhai, schedule: "{every}" }}

insurers:
  coface-fr:
    name: Coface
    policy_number: "FR-000000"
    declaration_deadline_days: 90
    endpoint:
      url: {hp}/insurer
      secrets: ["{secret}"]
      timeout_seconds: {args.send_timeout}
    reference_pointer: /reference
    retry_hours: 1

# No delivery hours and no contact budget: everything may be sent at any time.
dispatch:
  lease_seconds: {args.lease}
  max_attempts: 20
  backoff_base_seconds: 1
  backoff_max_seconds: 4

channels:
  outbox_dir: outbox
  documents: {{ archive: directory, dir: archive }}
  email:
    smtp: {{ host: 127.0.0.1, port: {peers.smtp_port}, security: plain, timeout_seconds: {args.send_timeout}, pool_size: 2 }}
    from: "Ateliers Durand <recouvrement@ateliers-durand.example>"
  sms:
    provider: http
    timeout_seconds: {args.send_timeout}
    http:
      url: {hp}/sms
      headers: {{ authorization: "Bearer {token}" }}
      content_type: application/json
      body: '{sms_body}'
      id_pointer: /id
  call_tasks:
    default_assignee: recouvrement
    notify: {{ url: {hp}/calls, secrets: ["{secret}"], timeout_seconds: {args.send_timeout} }}
  formal_notice:
    registered_mail: {{ url: {hp}/registered-mail, tracking_pointer: /id, timeout_seconds: {args.send_timeout} }}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(cfg)


# ------------------------------------------------------------------------ relance


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELANCE_") and k not in ("RUST_LOG",)}
    env["RELANCE_LOG_FORMAT"] = "json"
    return env


def run(argv, env=None, cwd=None, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    if check and p.returncode != 0:
        raise SetupError("%s: exit %d\n%s" % (" ".join(argv[:6]), p.returncode, p.stderr[-3000:]))
    return p


class Instance:
    """One `relance serve` process, restarted after each kill; its logs in one file."""

    def __init__(self, name, binary, config, workdir, workers, grace):
        self.name = name
        self.argv = [binary, "--config", config, "serve", "--workers", str(workers), "--grace", str(grace)]
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "%s.log" % name)
        self.proc = None
        self.starts = 0
        self.kills = 0
        self.run_offset = 0
        self.failpoint = None
        self.aborts = 0  # runs ended by the failpoint, as injected
        self.unexpected = []  # (exit code, log tail)

    def start(self, failpoint=None):
        """Starts the process; with `failpoint` (RELANCE_FAILPOINT), it aborts itself
        right after a channel accepted its first message, before recording it."""
        self.run_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        out = open(self.log_path, "ab")
        out.write(("--- %s start %d at %s%s\n" % (self.name, self.starts + 1, time.strftime("%H:%M:%S"),
                                                  " with RELANCE_FAILPOINT=%s" % failpoint if failpoint else "")).encode())
        out.flush()
        env = clean_env()
        if failpoint:
            env["RELANCE_FAILPOINT"] = failpoint
        self.failpoint = failpoint
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, cwd=self.workdir, env=env)
        out.close()
        self.starts += 1

    def check_alive(self):
        """Restarts a process that ended: by its failpoint (expected), or by itself
        (recorded as a failure)."""
        if self.proc is not None and self.proc.poll() is not None:
            if self.failpoint and self.proc.returncode == -signal.SIGABRT:
                self.aborts += 1
            else:
                self.unexpected.append((self.proc.returncode, self.tail()))
                log("  !! %s exited by itself with code %s; restarting" % (self.name, self.proc.returncode))
            self.start()

    def kill(self):
        self.check_alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self, timeout):
        """SIGTERM: a graceful stop must exit 0."""
        if self.proc.poll() is not None:
            self.unexpected.append((self.proc.returncode, self.tail()))
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "timeout"

    def tail(self, n=15):
        with open(self.log_path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")

    def events(self, since_offset=0):
        """The JSON log lines written since `since_offset`."""
        out = []
        with open(self.log_path, "rb") as f:
            f.seek(since_offset)
            for raw in f:
                line = raw.decode("utf-8", "replace")
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass  # a line cut by SIGKILL
                elif "internal error" in line or "panicked" in line:
                    out.append({"level": "ERROR", "message": line.strip(), "raw": True})
        return out


def list_actions(binary, config):
    rows, after = [], 0
    while True:
        p = run([binary, "--config", config, "actions", "list", "--format", "json", "--limit", "10000", "--after", str(after)], env=clean_env())
        page = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        rows += page
        if len(page) < 10000:
            return rows
        after = page[-1]["id"]


def show_action(binary, config, action_id):
    p = run([binary, "--config", config, "actions", "show", str(action_id), "--format", "json"], env=clean_env())
    return json.loads(p.stdout)


def pending_count(binary, config):
    n = 0
    for status in PENDING:
        p = run([binary, "--config", config, "actions", "list", "--status", status, "--limit", "10000", "--format", "json"],
                env=clean_env(), check=False)
        if p.returncode != 0:
            return None  # the database is busy or unreachable: ask again
        n += sum(1 for line in p.stdout.splitlines() if line.strip())
    return n


def parse_time(s):
    s = s.replace("Z", "+00:00")
    m = re.match(r"(.*\.\d{6})\d*(.*)", s)
    if m:
        s = m.group(1) + m.group(2)
    return dt.datetime.fromisoformat(s).timestamp()


# --------------------------------------------------------------------- scenario


def run_scenario(name, args, binary, database_url, instances_count, rng):
    t0 = time.time()
    workdir = tempfile.mkdtemp(prefix="relance-crash-%s-" % name)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    token = secrets.token_hex(16)
    peers = Peers(workdir, secret, token, args.peer_fail_rate, args.smtp_fail_first, rng.randrange(1 << 30))
    instances = []
    result = {"name": name, "workdir": workdir, "failures": []}
    try:
        config = os.path.join(workdir, "relance.yaml")
        write_config(config, binary, database_url, peers, secret, token, args)
        data = os.path.join(workdir, "data")
        run([binary, "sample", "--out", data, "--customers", str(args.customers), "--invoices", str(args.invoices),
             "--seed", str(args.seed)], env=clean_env(), cwd=workdir)
        for what in ("customers", "invoices", "payments"):
            run([binary, "--config", config, "import", what, os.path.join(data, what + ".csv")], env=clean_env(), cwd=workdir)
        run([binary, "--config", config, "config", "check"], env=clean_env(), cwd=workdir)
        instances = [Instance("%s-%d" % (name, i + 1), binary, config, workdir, args.workers, args.grace)
                     for i in range(instances_count)]
        log("== %s: %d instance(s), %d customers, %d invoices, %d kills, work dir %s"
            % (name, instances_count, args.customers, args.invoices, args.kills, workdir))
        for inst in instances:
            inst.start()

        # Kill at random moments, restart at once (or after a short pause).
        kill_times = []
        kills = 0
        while kills < args.kills:
            time.sleep(rng.uniform(args.min_gap, args.max_gap))
            targets = [rng.choice(instances)]
            if len(instances) > 1 and rng.random() < 0.2:
                targets = list(instances)  # both at once, now and then
            for inst in targets:
                inst.kill()
                kills += 1
                kill_times.append(round(time.time() - t0, 1))
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, args.lease))  # down for a while
            for inst in targets:
                # The first restarts abort themselves right after a send (the window
                # between the peer's acceptance and the record of it), every time.
                fp = "dispatch-after-send" if sum(i.starts for i in instances) - len(instances) < args.aborts else None
                inst.start(fp)
            if args.verbose:
                log("  kill %d at %.1f s: %s" % (kills, time.time() - t0, ", ".join(i.name for i in targets)))
        kill_phase = time.time() - t0
        log("  %d kills in %.1f s; draining" % (kills, kill_phase))

        # Drain: nothing pending, and every segment ticked since the last restart.
        drained = False
        deadline = time.time() + args.drain_timeout
        while time.time() < deadline:
            for inst in instances:
                inst.check_alive()
            ticked = set()
            for inst in instances:
                for e in inst.events(inst.run_offset):
                    if str(e.get("message", "")).startswith("tick done"):
                        ticked.add(e.get("segment"))
            n = pending_count(binary, config)
            if n == 0 and ticked >= set(NOTICE_MEANS):
                drained = True
                break
            time.sleep(1)
        drain_time = time.time() - t0 - kill_phase
        for inst in instances:
            code = inst.stop(args.grace + 15)
            if code != 0:
                result["failures"].append("%s: graceful stop (SIGTERM) ended with %s" % (inst.name, code))
        peers.stop()
        actions = list_actions(binary, config)
        history = lambda action_id: show_action(binary, config, action_id)  # noqa: E731
        result.update(reconcile(actions, peers.receipts(), instances, drained, history))
        last_receipt = max([r["at"] for r in result["receipts"] if r.get("accepted")], default=t0) - t0
        result.update(kills=kills, kill_times=kill_times, kill_phase=kill_phase, drain_time=drain_time,
                      wall=time.time() - t0, instances=instances_count, aborts=sum(i.aborts for i in instances),
                      busy_kills=sum(1 for t in kill_times if t < last_receipt), last_receipt=last_receipt)
        return result
    finally:
        for inst in instances:
            if inst.proc is not None and inst.proc.poll() is None:
                inst.proc.kill()
                inst.proc.wait()
        peers.stop()


def reconcile(actions, receipts, instances, drained, show):
    """Sorts every action into a category by what the peers received; `show(id)` gives
    an action's history (`relance actions show ID --format json`)."""
    by_key = {a["key"]: a for a in actions}
    accepted = collections.defaultdict(list)  # (action id, part) -> receipts
    unknown, bad_signatures, mismatched, rejected = [], [], [], 0
    per_peer = collections.Counter()
    for r in receipts:
        if r.get("verified") is False:
            bad_signatures.append(r)
            continue
        if not r.get("accepted"):
            rejected += 1
            continue
        per_peer[r["part"]] += 1
        a = by_key.get(r["key"])
        if a is None:
            unknown.append(r)
            continue
        # What the request says must be the action its id names.
        said = r.get("action_id")
        if said not in (None, "") and str(said) != str(a["id"]):
            mismatched.append((a["id"], r))
        if r.get("customer") not in (None, "") and r["customer"] != a["customer"]:
            mismatched.append((a["id"], r))
        accepted[(a["id"], r["part"])].append(r)

    def parts_of(a):
        if a["kind"] == "formal_notice":
            parts = set(NOTICE_MEANS.get(a["segment"], ["registered_mail"]))
            for p in (a.get("provider_ref") or "").split():
                if ":" in p and p.split(":", 1)[0] in ("email", "registered_mail"):
                    parts.add(p.split(":", 1)[0])
            return sorted(parts)
        return [PART_OF_KIND[a["kind"]]]

    # The history (lease reclaims) of the actions that need it.
    history = {}

    def events(a):
        if a["id"] not in history:
            history[a["id"]] = show(a["id"]).get("events", [])
        return history[a["id"]]

    def reclaims(a):
        return sorted(parse_time(e["at"]) for e in events(a)
                      if e.get("status") in ("retrying", "held") and "lease expired" in (e.get("detail") or ""))

    cat = {}  # action id -> category
    held_parts = []  # what the peers received of each held action, by part
    details = collections.defaultdict(list)
    for a in actions:
        st, parts = a["status"], parts_of(a)
        counts = {p: len(accepted.get((a["id"], p), [])) for p in parts}
        got = sum(counts.values())
        if st in PENDING:
            cat[a["id"]] = "stuck"
        elif st == "held":
            cat[a["id"]] = "held"
            held_parts.append(counts)
            why = [e.get("detail") or "" for e in events(a) if e.get("status") == "held"]
            details["held"].append("%d %s %s, parts received %s: %s" % (
                a["id"], a["kind"], a["customer"], counts, (why[-1] if why else "").split(":")[0]))
        elif st in ("blocked", "cancelled", "error"):
            cat[a["id"]] = "not_sent"
            if got:
                details["not_sent"].append("%d %s %s %s, yet received %s" % (a["id"], a["kind"], a["customer"], st, counts))
        elif any(n == 0 for n in counts.values()):
            cat[a["id"]] = "lost"
            details["lost"].append("%d %s %s status %s attempts %s, received %s; last error: %s" % (
                a["id"], a["kind"], a["customer"], st, a["attempts"], counts, a.get("last_error")))
        elif all(n == 1 for n in counts.values()):
            cat[a["id"]] = "once"
        else:
            # Received more than once with the same id: allowed only on a resending
            # channel, each extra copy after a lease expiry of this action.
            ok = a["kind"] in RESENDING
            times = reclaims(a)
            for p, n in counts.items():
                rs = sorted(r["at"] for r in accepted[(a["id"], p)])
                for k in range(1, n):
                    if len([t for t in times if t <= rs[k] + 0.5]) < k:
                        ok = False
            cat[a["id"]] = "resent_ok" if ok else "resent_bad"
            if not ok:
                details["resent_bad"].append("%d %s %s: received %s, lease reclaims %d" % (
                    a["id"], a["kind"], a["customer"], counts, len(times)))
        if a["kind"] == "insurer_handover":
            bodies = {r["sha256"] for r in accepted.get((a["id"], "insurer"), [])}
            if len(bodies) > 1:
                details["content"].append("%d insurer_handover %s: same webhook-id, %d different bodies" % (a["id"], a["customer"], len(bodies)))

    # The same step on the same invoice delivered under two action keys: twice with
    # different ids (the rules send each step once per invoice).
    owners = collections.defaultdict(set)
    for a in actions:
        if any(accepted.get((a["id"], p)) for p in parts_of(a)):
            for inv in a["invoices"]:
                owners[(a["customer"], a["kind"], a["step"], inv)].add(a["id"])
    twice = set()
    for k, ids in owners.items():
        if len(ids) > 1:
            twice |= ids
            details["twice"].append("%s %s %s invoice %s: actions %s" % (k[0], k[1], k[2], k[3], sorted(ids)))
    for aid, r in mismatched:
        twice.add(aid)
        details["twice"].append("action %d: a %s request with its id names action %s / customer %s" % (
            aid, r["part"], r.get("action_id"), r.get("customer")))
    for aid in twice:
        cat[aid] = "twice"

    # What the instances logged.
    reclaimed_logged = ticks = tick_failed = 0
    internal = []
    for inst in instances:
        for e in inst.events():
            m = str(e.get("message", ""))
            if m.startswith("send interrupted (lease expired)"):
                reclaimed_logged += 1
            elif m.startswith("tick done"):
                ticks += 1
            elif m.startswith("tick failed"):
                tick_failed += 1
            if "internal error" in m or "panicked" in m or "internal error" in str(e.get("error", "")):
                internal.append("%s: %s %s" % (inst.name, m, e.get("error", "")))
    for a in actions:
        if "internal error" in (a.get("last_error") or ""):
            internal.append("action %d: %s" % (a["id"], a["last_error"]))

    return {
        "actions": actions, "receipts": receipts, "categories": cat, "held_parts": held_parts, "details": details, "unknown": unknown,
        "bad_signatures": bad_signatures, "rejected": rejected, "per_peer": per_peer,
        "reclaimed_logged": reclaimed_logged, "ticks": ticks, "tick_failed": tick_failed,
        "internal": internal, "drained": drained,
        "unexpected": [(i.name, c, t) for i in instances for c, t in i.unexpected],
    }


ROWS = [
    ("once", "delivered once", False),
    ("resent_ok", "resent, same id, after a lease expiry", False),
    ("resent_bad", "resent, same id, NOT allowed", True),
    ("twice", "delivered twice, different ids", True),
    ("lost", "lost", True),
    ("held", "held (for an operator)", False),
    ("not_sent", "not to be sent (blocked/cancelled)", False),
    ("stuck", "still pending after the drain", True),
]


def held_receipts(r):
    """How many held actions the peers had received whole, in part, not at all."""
    held = r["held_parts"]
    whole = sum(1 for c in held if all(c.values()))
    none = sum(1 for c in held if not any(c.values()))
    return whole, len(held) - whole - none, none


def report(r):
    actions, cat = r["actions"], r["categories"]
    statuses = collections.Counter(a["status"] for a in actions)
    log("")
    log("== %s: %d instance(s), %d kills, %.1f s wall (kills %.1f s, drain %.1f s)" % (
        r["name"], r["instances"], r["kills"], r["wall"], r["kill_phase"], r["drain_time"]))
    kt = [str(t) for t in r["kill_times"]]
    log("   kills at (s): %s" % " ".join(kt if len(kt) <= 20 else kt[:10] + ["…"] + kt[-5:]))
    log("   %d of the %d kills came while deliveries were under way (last message received at %.1f s); "
        "%d run(s) aborted by RELANCE_FAILPOINT=dispatch-after-send" % (r["busy_kills"], r["kills"], r["last_receipt"], r["aborts"]))
    log("   actions: %d (%s)" % (len(actions), ", ".join("%s %d" % (k, v) for k, v in sorted(statuses.items()))))
    log("   received: %s; answered 503 (retried): %d; lease reclaims logged: %d; ticks done: %d, failed: %d" % (
        ", ".join("%s %d" % (k, v) for k, v in sorted(r["per_peer"].items())), r["rejected"],
        r["reclaimed_logged"], r["ticks"], r["tick_failed"]))
    header = "   %-40s" % "category" + "".join("%17s" % k for k in KINDS) + "%8s" % "total"
    log(header)
    for key, label, _ in ROWS:
        counts = collections.Counter(a["kind"] for a in actions if cat.get(a["id"]) == key)
        log("   %-40s" % label + "".join("%17d" % counts[k] for k in KINDS) + "%8d" % sum(counts.values()))
    failures = list(r["failures"])
    for key, label, fatal in ROWS:
        n = sum(1 for v in cat.values() if v == key)
        if fatal and n:
            failures.append("%d action(s) %s" % (n, label))
        lines = r["details"].get(key, [])
        if key == "held" and lines:
            log("   held: %d; the peers had received every part of %d, some parts of %d, nothing of %d" % (
                len(lines), *held_receipts(r)))
        shown = 5 if key == "held" else 20
        for line in lines[:shown]:
            log("   %s: %s" % (label, line))
        if len(lines) > shown:
            log("   %s: … and %d more" % (label, len(lines) - shown))
    for line in r["details"].get("content", [])[:20]:
        log("   content: %s" % line)
    if r["details"].get("content"):
        failures.append("%d handover(s) sent twice with the same id but different bytes" % len(r["details"]["content"]))
    if r["unknown"]:
        failures.append("%d message(s) received with an id no action has" % len(r["unknown"]))
        for u in r["unknown"][:10]:
            log("   unknown id: %s %s" % (u["part"], u.get("id")))
    if r["bad_signatures"]:
        failures.append("%d request(s) whose signature or token did not verify" % len(r["bad_signatures"]))
        for u in r["bad_signatures"][:10]:
            log("   bad signature: %s %s %s" % (u["part"], u.get("id"), u.get("error")))
    if not r["drained"]:
        failures.append("the service did not drain within the time allowed")
    for name, code, tail in r["unexpected"]:
        failures.append("%s exited by itself with code %s" % (name, code))
        log("   %s exited with %s; last log lines:\n%s" % (name, code, tail))
    if r["internal"]:
        failures.append("%d internal error(s) (panics) reported" % len(r["internal"]))
        for line in r["internal"][:10]:
            log("   internal error: %s" % line)
    log("   result: %s" % ("FAIL: " + "; ".join(failures) if failures else "OK"))
    return failures


def self_test():
    """Checks the reconciliation on a made-up action log: each kind of failure must be
    seen, so that a clean run means something."""
    def action(i, kind, status, step="reminder_1", customer="C1", invoices=("F1",), segment="smb"):
        return {"id": i, "key": "planned:%040x" % i, "kind": kind, "status": status, "step": step, "customer": customer,
                "invoices": list(invoices), "segment": segment, "attempts": 1, "provider_ref": None, "last_error": None}

    def got(i, part, at, **kw):
        ids = {"email": "<planned.%040x@x.example>", "sms": "planned:%040x", "call": "msg_planned_%040x",
               "insurer": "msg_planned_%040x", "registered_mail": "planned:%040x"}
        r = {"part": part, "id": ids[part] % i, "accepted": True, "verified": True, "at": at, "sha256": "s"}
        r.update(kw)
        r["key"] = key_of(r["id"])
        return r

    actions = [
        action(1, "email", "sent", invoices=("F1",)),
        action(2, "email", "sent", invoices=("F2",)),
        action(3, "sms", "sent", step="sms_reminder", invoices=("F3",)),
        action(4, "sms", "sent", step="sms_reminder", invoices=("F4",)),
        action(5, "formal_notice", "sent", step="formal_notice", invoices=("F5",)),
        action(6, "email", "sent", step="reminder_2", invoices=("F6", "F7")),
        action(7, "email", "sent", step="reminder_2", invoices=("F7",)),
        action(8, "insurer_handover", "held", step="insurer_handover"),
        action(9, "call_task", "retrying", step="call"),
        action(10, "sms", "sent", step="sms_reminder", invoices=("F10",)),
    ]
    receipts = [
        got(1, "email", 10), got(3, "sms", 10), got(3, "sms", 30), got(4, "sms", 10), got(4, "sms", 11),
        got(5, "email", 10), got(5, "email", 30), got(5, "registered_mail", 10), got(6, "email", 10),
        got(7, "email", 11), got(99, "email", 12), got(10, "sms", 10, action_id="3"),
    ]
    events = {3: [{"status": "retrying", "at": "1970-01-01T00:00:20Z", "detail": "the send was interrupted (lease expired); resending"}],
              5: [{"status": "retrying", "at": "1970-01-01T00:00:20Z", "detail": "interrupted (lease expired) before any request"}]}
    r = reconcile(actions, receipts, [], True, lambda i: {"events": events.get(i, [])})
    want = {1: "once", 2: "lost", 3: "resent_ok", 4: "resent_bad", 5: "resent_bad", 6: "twice", 7: "twice",
            8: "held", 9: "stuck", 10: "twice"}
    wrong = {i: (r["categories"].get(i), c) for i, c in want.items() if r["categories"].get(i) != c}
    if wrong or len(r["unknown"]) != 1:
        print("self-test FAILED: (got, wanted) %s; unknown ids %d" % (wrong, len(r["unknown"])))
        return 1
    print("self-test: OK (once, lost, resent allowed and not, twice with different ids, held, stuck, unknown id)")
    return 0


# ------------------------------------------------------------------------- main


def postgres_database(server_url, name):
    u = urllib.parse.urlsplit(server_url)
    admin = urllib.parse.urlunsplit((u.scheme, u.netloc, "/postgres", "", ""))
    return admin, urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, "", ""))


def psql(admin_url, sql):
    run(["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Small run (CI): crash_harness.py target/debug/relance\n"
                                        "Large run:      crash_harness.py target/debug/relance --large")
    ap.add_argument("binary", nargs="?", default=os.path.join(REPO, "target", "debug", "relance"))
    ap.add_argument("--large", action="store_true", help="100 kills per scenario, 1,500 customers (thousands of actions)")
    ap.add_argument("--kills", type=int, help="SIGKILLs per scenario (default 10; 100 with --large)")
    ap.add_argument("--customers", type=int, help="customers of the generated portfolio (default 200; 1500 with --large)")
    ap.add_argument("--invoices", type=int, help="invoices (default 4 per customer)")
    ap.add_argument("--scenarios", default="sqlite,postgres", help="sqlite, postgres or both (default)")
    ap.add_argument("--postgres", default=os.environ.get("RELANCE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                    help="a PostgreSQL server URL (its database part is ignored); default RELANCE_TEST_POSTGRES_URL")
    ap.add_argument("--min-gap", type=float, default=0.3, help="shortest time between kills, seconds")
    ap.add_argument("--max-gap", type=float, default=2.0, help="longest time between kills, seconds")
    ap.add_argument("--lease", type=int, default=5, help="dispatch.lease_seconds")
    ap.add_argument("--send-timeout", type=int, default=3, help="timeout of every transport, seconds")
    ap.add_argument("--tick-every", type=int, default=10, help="seconds between scheduled ticks")
    ap.add_argument("--aborts", type=int, help="restarts with RELANCE_FAILPOINT=dispatch-after-send (default 2; 10 with --large)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--grace", type=int, default=5)
    ap.add_argument("--drain-timeout", type=float, help="seconds allowed to drain (default 90; 600 with --large)")
    ap.add_argument("--peer-fail-rate", type=float, default=0.03, help="share of SMS, call and letter requests answered 503")
    ap.add_argument("--smtp-fail-first", type=int, default=3, help="the SMTP server answers the first N messages 451")
    ap.add_argument("--seed", type=int, default=42, help="portfolio seed")
    ap.add_argument("--kill-seed", type=int, help="seed of the kill moments (default: random, printed)")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (kept anyway on failure)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--self-test", action="store_true", help="check the reconciliation on a made-up log, then stop")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    args.kills = args.kills or (100 if args.large else 10)
    args.aborts = args.aborts if args.aborts is not None else (10 if args.large else 2)
    args.customers = args.customers or (1500 if args.large else 200)
    args.invoices = args.invoices or 4 * args.customers
    args.drain_timeout = args.drain_timeout or (600 if args.large else 90)
    if self_test() != 0:
        return 1
    kill_seed = args.kill_seed if args.kill_seed is not None else random.randrange(1 << 31)
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("crash_harness: no relance binary at %s (build it with `cargo build --bin relance`)" % binary, file=sys.stderr)
        return 2
    # The binary under test, pinned: a rebuild during the run must not change it.
    bindir = tempfile.mkdtemp(prefix="relance-crash-bin-")
    pinned = os.path.join(bindir, "relance")
    try:
        os.link(binary, pinned)
    except OSError:
        shutil.copy2(binary, pinned)
    version = run([pinned, "--version"]).stdout.strip()
    log("crash test of %s (%s, built %s), kill seed %d" % (
        binary, version, time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(pinned))), kill_seed))
    try:
        return run_all(args, pinned, kill_seed)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


def run_all(args, binary, kill_seed):
    rng = random.Random(kill_seed)
    started = time.time()
    results, failures = [], []
    for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        pg_db = admin = None
        try:
            if scenario == "sqlite":
                r = run_scenario("sqlite", args, binary, "sqlite://relance.db", 1, rng)
            elif scenario == "postgres":
                pg_db = "relance_crash_%d_%s" % (os.getpid(), secrets.token_hex(3))
                admin, url = postgres_database(args.postgres, pg_db)
                psql(admin, 'CREATE DATABASE "%s"' % pg_db)
                r = run_scenario("postgres", args, binary, url, 2, rng)
            else:
                print("crash_harness: unknown scenario %r" % scenario, file=sys.stderr)
                return 2
        except SetupError as e:
            print("crash_harness: %s: %s" % (scenario, e), file=sys.stderr)
            return 2
        finally:
            if pg_db:
                try:
                    psql(admin, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % pg_db)
                except SetupError as e:
                    print("crash_harness: could not drop %s: %s" % (pg_db, e), file=sys.stderr)
        f = report(r)
        results.append(r)
        failures += ["%s: %s" % (scenario, x) for x in f]
        if not f and not args.keep:
            shutil.rmtree(r["workdir"], ignore_errors=True)
        else:
            log("   work directory kept: %s" % r["workdir"])

    log("")
    log("== summary: %.1f s wall, kill seed %d" % (time.time() - started, kill_seed))
    log("   %-10s %6s %8s %6s %10s %8s %6s %5s %5s %6s" % (
        "scenario", "kills", "actions", "once", "resent-ok", "twice", "lost", "held", "bad", "wall s"))
    for r in results:
        c = collections.Counter(r["categories"].values())
        log("   %-10s %6d %8d %6d %10d %8d %6d %5d %5d %6.1f" % (
            r["name"], r["kills"], len(r["actions"]), c["once"], c["resent_ok"], c["twice"], c["lost"], c["held"],
            c["resent_bad"] + c["stuck"], r["wall"]))
    if failures:
        log("FAIL")
        for f in failures:
            log("  - " + f)
        return 1
    log("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
