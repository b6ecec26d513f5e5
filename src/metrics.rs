//! Process metrics for `/metrics` (Prometheus text format): counters and histograms
//! the scheduler, the dispatcher and the HTTP API update as they work, read together
//! with gauges taken from the database at scrape time (see `api::ops`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A histogram with fixed upper bounds, in seconds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

const TICK_BOUNDS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
const DELIVERY_BOUNDS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A service's metrics.
#[derive(Debug)]
pub struct Metrics {
    ticks: Mutex<BTreeMap<(String, String), u64>>,
    tick_duration: Mutex<Histogram>,
    customers_evaluated: AtomicU64,
    rule_errors: AtomicU64,
    deliveries: Mutex<BTreeMap<(String, String), u64>>,
    delivery_duration: Mutex<BTreeMap<String, Histogram>>,
    http_requests: Mutex<BTreeMap<u16, u64>>,
    leader: AtomicBool,
    /// Whether each transport's last delivery attempt reached it.
    transports: Mutex<BTreeMap<String, bool>>,
    /// Rule files refused at reload, by segment.
    rule_reload_failures: Mutex<BTreeMap<String, u64>>,
    /// Whether each segment's rule file differs from the version running.
    rule_script_stale: Mutex<BTreeMap<String, bool>>,
    /// Actions planned by the ticks, by segment and variant (segments with variants).
    variant_planned: Mutex<BTreeMap<(String, String), u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics at zero. A running service has one set, shared by its scheduler,
    /// dispatcher, rule registry and HTTP API; two services in one process count apart.
    pub fn new() -> Metrics {
        Metrics {
            ticks: Mutex::new(BTreeMap::new()),
            tick_duration: Mutex::new(Histogram::new(TICK_BOUNDS)),
            customers_evaluated: AtomicU64::new(0),
            rule_errors: AtomicU64::new(0),
            deliveries: Mutex::new(BTreeMap::new()),
            delivery_duration: Mutex::new(BTreeMap::new()),
            http_requests: Mutex::new(BTreeMap::new()),
            leader: AtomicBool::new(false),
            transports: Mutex::new(BTreeMap::new()),
            rule_reload_failures: Mutex::new(BTreeMap::new()),
            rule_script_stale: Mutex::new(BTreeMap::new()),
            variant_planned: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A tick of `segment` ended with `status` (`done`, `failed`).
    pub fn tick(&self, segment: &str, status: &str, customers: u64, errors: u64) {
        if let Ok(mut t) = self.ticks.lock() {
            *t.entry((segment.to_string(), status.to_string()))
                .or_default() += 1;
        }
        self.customers_evaluated
            .fetch_add(customers, Ordering::Relaxed);
        self.rule_errors.fetch_add(errors, Ordering::Relaxed);
    }

    /// A tick of `segment` planned `n` new actions decided by `variant`'s script.
    pub fn variant_planned(&self, segment: &str, variant: &str, n: u64) {
        if let Ok(mut v) = self.variant_planned.lock() {
            *v.entry((segment.to_string(), variant.to_string()))
                .or_default() += n;
        }
    }

    /// A pass over the ledger (one or more segments) took `took`.
    pub fn tick_duration(&self, took: Duration) {
        if let Ok(mut h) = self.tick_duration.lock() {
            h.observe(took.as_secs_f64());
        }
    }

    /// A delivery attempt of an action of `kind` ended with `outcome` after `took`.
    pub fn delivery(&self, kind: &str, outcome: &str, took: Duration) {
        if let Ok(mut d) = self.deliveries.lock() {
            *d.entry((kind.to_string(), outcome.to_string()))
                .or_default() += 1;
        }
        if let Ok(mut h) = self.delivery_duration.lock() {
            h.entry(kind.to_string())
                .or_insert_with(|| Histogram::new(DELIVERY_BOUNDS))
                .observe(took.as_secs_f64());
        }
    }

    /// An HTTP request was answered with `status`.
    pub fn http_request(&self, status: u16) {
        if let Ok(mut r) = self.http_requests.lock() {
            *r.entry(status).or_default() += 1;
        }
    }

    /// A delivery through `channel` reached its transport (`up`) or not; returns whether
    /// the transport was failing before.
    pub fn transport(&self, channel: &str, up: bool) -> bool {
        self.transports
            .lock()
            .map(|mut t| t.insert(channel.to_string(), up) == Some(false))
            .unwrap_or(false)
    }

    /// The rule file of `segment` was refused at reload (it does not compile, is empty,
    /// unreadable, not UTF-8, or was deleted).
    pub fn rule_reload_failed(&self, segment: &str) {
        if let Ok(mut f) = self.rule_reload_failures.lock() {
            *f.entry(segment.to_string()).or_default() += 1;
        }
    }

    /// Whether the rule file of `segment` differs from the version running (a refused
    /// file), or matches it again.
    pub fn set_rule_script_stale(&self, segment: &str, stale: bool) {
        if let Ok(mut s) = self.rule_script_stale.lock() {
            s.insert(segment.to_string(), stale);
        }
    }

    /// Whether this instance schedules the ticks.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The process metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP relance_ticks_total Ticks run by this instance, by segment and outcome.\n# TYPE relance_ticks_total counter");
        if let Ok(t) = self.ticks.lock() {
            for ((segment, status), n) in t.iter() {
                let _ = writeln!(
                    out,
                    "relance_ticks_total{{segment=\"{}\",status=\"{}\"}} {n}",
                    label(segment),
                    label(status)
                );
            }
        }
        let _ = writeln!(out, "# HELP relance_tick_duration_seconds Duration of a pass over the ledger (one tick of one or more segments).\n# TYPE relance_tick_duration_seconds histogram");
        if let Ok(h) = self.tick_duration.lock() {
            h.render(out, "relance_tick_duration_seconds", "");
        }
        let _ = writeln!(out, "# HELP relance_customers_evaluated_total Customers whose rules ran, over all ticks.\n# TYPE relance_customers_evaluated_total counter\nrelance_customers_evaluated_total {}", self.customers_evaluated.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP relance_rule_errors_total Customers whose rule script failed, over all ticks.\n# TYPE relance_rule_errors_total counter\nrelance_rule_errors_total {}", self.rule_errors.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP relance_deliveries_total Delivery attempts by action kind and outcome.\n# TYPE relance_deliveries_total counter");
        if let Ok(d) = self.deliveries.lock() {
            for ((kind, outcome), n) in d.iter() {
                let _ = writeln!(
                    out,
                    "relance_deliveries_total{{kind=\"{}\",outcome=\"{}\"}} {n}",
                    label(kind),
                    label(outcome)
                );
            }
        }
        let _ = writeln!(out, "# HELP relance_dispatch_latency_seconds Duration of a delivery attempt (channel call), by action kind.\n# TYPE relance_dispatch_latency_seconds histogram");
        if let Ok(h) = self.delivery_duration.lock() {
            for (kind, hist) in h.iter() {
                hist.render(
                    out,
                    "relance_dispatch_latency_seconds",
                    &format!("kind=\"{}\"", label(kind)),
                );
            }
        }
        let _ = writeln!(out, "# HELP relance_http_requests_total HTTP API requests by response status.\n# TYPE relance_http_requests_total counter");
        if let Ok(r) = self.http_requests.lock() {
            for (status, n) in r.iter() {
                let _ = writeln!(
                    out,
                    "relance_http_requests_total{{status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(out, "# HELP relance_scheduler_leader 1 when this instance schedules the ticks.\n# TYPE relance_scheduler_leader gauge\nrelance_scheduler_leader {}", u8::from(self.is_leader()));
        let _ = writeln!(out, "# HELP relance_transport_up 0 while a transport's deliveries fail for temporary reasons (network, timeouts, 5xx), 1 once one goes through again.\n# TYPE relance_transport_up gauge");
        if let Ok(t) = self.transports.lock() {
            for (channel, up) in t.iter() {
                let _ = writeln!(
                    out,
                    "relance_transport_up{{channel=\"{}\"}} {}",
                    label(channel),
                    u8::from(*up)
                );
            }
        }
        let _ = writeln!(out, "# HELP relance_rule_reload_failures_total Rule files refused at reload (not compiling, empty, unreadable, not UTF-8, deleted), by segment; each refused version counts once.\n# TYPE relance_rule_reload_failures_total counter");
        if let Ok(f) = self.rule_reload_failures.lock() {
            for (segment, n) in f.iter() {
                let _ = writeln!(
                    out,
                    "relance_rule_reload_failures_total{{segment=\"{}\"}} {n}",
                    label(segment)
                );
            }
        }
        let _ = writeln!(out, "# HELP relance_experiment_actions_planned_total Actions planned by the ticks of a segment with variants, by segment and variant (champion / challenger).\n# TYPE relance_experiment_actions_planned_total counter");
        if let Ok(v) = self.variant_planned.lock() {
            for ((segment, variant), n) in v.iter() {
                let _ = writeln!(
                    out,
                    "relance_experiment_actions_planned_total{{segment=\"{}\",variant=\"{}\"}} {n}",
                    label(segment),
                    label(variant)
                );
            }
        }
        let _ = writeln!(out, "# HELP relance_rule_script_stale 1 while a segment's rule file is refused and differs from the version running.\n# TYPE relance_rule_script_stale gauge");
        if let Ok(s) = self.rule_script_stale.lock() {
            for (segment, stale) in s.iter() {
                let _ = writeln!(
                    out,
                    "relance_rule_script_stale{{segment=\"{}\"}} {}",
                    label(segment),
                    u8::from(*stale)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_planned_by_a_variant_are_counted_by_segment_and_variant() {
        let m = Metrics::new();
        m.variant_planned("smb", "fast", 3);
        m.variant_planned("smb", "fast", 2);
        m.variant_planned("smb", "champion", 7);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "relance_experiment_actions_planned_total{segment=\"smb\",variant=\"fast\"} 5"
        ));
        assert!(out.contains(
            "relance_experiment_actions_planned_total{segment=\"smb\",variant=\"champion\"} 7"
        ));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[1.0, 5.0]);
        h.observe(0.5);
        h.observe(3.0);
        h.observe(9.0);
        let mut out = String::new();
        h.render(&mut out, "x", "kind=\"email\"");
        assert!(
            out.contains("x_bucket{kind=\"email\",le=\"1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{kind=\"email\",le=\"5\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{kind=\"email\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_sum{kind=\"email\"} 12.5\n"), "{out}");
        assert!(out.contains("x_count{kind=\"email\"} 3\n"), "{out}");
    }
}
