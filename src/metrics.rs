//! Process metrics for `/metrics` (Prometheus text format 0.0.4), kept with the
//! `prometheus-client` crate: counters and histograms the scheduler, the dispatcher and
//! the HTTP API update as they work, the process's own figures (`process_*`, read from
//! `/proc` at scrape time) and the build, read together with gauges taken from the
//! database at scrape time (see `api::ops`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

const TICK_BOUNDS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
const DELIVERY_BOUNDS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const HTTP_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn delivery_histogram() -> Histogram {
    Histogram::new(DELIVERY_BOUNDS.iter().copied())
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BOUNDS.iter().copied())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SegmentStatus {
    segment: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SegmentVariant {
    segment: String,
    variant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOutcome {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRequest {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Channel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Segment {
    segment: String,
}

/// A service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ticks: Family<SegmentStatus, Counter>,
    tick_duration: Histogram,
    customers_evaluated: Counter,
    rule_errors: Counter,
    deliveries: Family<KindOutcome, Counter>,
    delivery_duration: Family<Kind, Histogram>,
    http_requests: Family<Status, Counter>,
    http_duration: Family<HttpRequest, Histogram>,
    leader: AtomicBool,
    leader_gauge: Gauge,
    /// Whether each transport's last delivery attempt reached it.
    transports: Mutex<BTreeMap<String, bool>>,
    transport_up: Family<Channel, Gauge>,
    /// Rule files refused at reload, by segment.
    rule_reload_failures: Family<Segment, Counter>,
    /// Whether each segment's rule file differs from the version running.
    rule_script_stale: Family<Segment, Gauge>,
    /// Actions planned by the ticks, by segment and variant (segments with variants).
    variant_planned: Family<SegmentVariant, Counter>,
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
        let mut registry = Registry::default();
        registry.register(
            "relance_build",
            "The version of relance running (value 1)",
            Info::new(vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]),
        );
        registry.register_collector(Box::new(ProcessCollector));
        let m = Metrics {
            registry: Registry::default(),
            ticks: Family::default(),
            tick_duration: Histogram::new(TICK_BOUNDS.iter().copied()),
            customers_evaluated: Counter::default(),
            rule_errors: Counter::default(),
            deliveries: Family::default(),
            delivery_duration: Family::new_with_constructor(delivery_histogram),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            leader: AtomicBool::new(false),
            leader_gauge: Gauge::default(),
            transports: Mutex::new(BTreeMap::new()),
            transport_up: Family::default(),
            rule_reload_failures: Family::default(),
            rule_script_stale: Family::default(),
            variant_planned: Family::default(),
        };
        registry.register(
            "relance_ticks",
            "Ticks run by this instance, by segment and outcome",
            m.ticks.clone(),
        );
        registry.register(
            "relance_tick_duration_seconds",
            "Duration of a pass over the ledger (one tick of one or more segments)",
            m.tick_duration.clone(),
        );
        registry.register(
            "relance_customers_evaluated",
            "Customers whose rules ran, over all ticks",
            m.customers_evaluated.clone(),
        );
        registry.register(
            "relance_rule_errors",
            "Customers whose rule script failed, over all ticks",
            m.rule_errors.clone(),
        );
        registry.register(
            "relance_deliveries",
            "Delivery attempts by action kind and outcome",
            m.deliveries.clone(),
        );
        registry.register(
            "relance_dispatch_latency_seconds",
            "Duration of a delivery attempt (channel call), by action kind",
            m.delivery_duration.clone(),
        );
        registry.register(
            "relance_http_requests",
            "HTTP requests answered (API and console) by response status",
            m.http_requests.clone(),
        );
        registry.register(
            "relance_http_request_duration_seconds",
            "Time to answer an HTTP request (API and console), by method, route (the path's pattern) and status",
            m.http_duration.clone(),
        );
        registry.register(
            "relance_scheduler_leader",
            "1 when this instance schedules the ticks",
            m.leader_gauge.clone(),
        );
        registry.register(
            "relance_transport_up",
            "0 while a transport's deliveries fail for temporary reasons (network, timeouts, 5xx), 1 once one goes through again",
            m.transport_up.clone(),
        );
        registry.register(
            "relance_rule_reload_failures",
            "Rule files refused at reload (not compiling, empty, unreadable, not UTF-8, deleted), by segment; each refused version counts once",
            m.rule_reload_failures.clone(),
        );
        registry.register(
            "relance_experiment_actions_planned",
            "Actions planned by the ticks of a segment with variants, by segment and variant (champion / challenger)",
            m.variant_planned.clone(),
        );
        registry.register(
            "relance_rule_script_stale",
            "1 while a segment's rule file is refused and differs from the version running",
            m.rule_script_stale.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// A tick of `segment` ended with `status` (`done`, `failed`).
    pub fn tick(&self, segment: &str, status: &str, customers: u64, errors: u64) {
        self.ticks
            .get_or_create(&SegmentStatus {
                segment: segment.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.customers_evaluated.inc_by(customers);
        self.rule_errors.inc_by(errors);
    }

    /// Starts the series of a configured segment at zero (its ticks done and failed,
    /// its scripts' refused reloads, its variants' planned actions), so that a rule or
    /// a dashboard sees the first increase rather than a series appearing.
    pub fn seed_segment(&self, segment: &str, scripts: &[(String, Option<String>)]) {
        for status in ["done", "failed"] {
            let _ = self.ticks.get_or_create(&SegmentStatus {
                segment: segment.to_string(),
                status: status.to_string(),
            });
        }
        for (label, variant) in scripts {
            let _ = self.rule_reload_failures.get_or_create(&Segment {
                segment: label.clone(),
            });
            if let Some(variant) = variant {
                let _ = self.variant_planned.get_or_create(&SegmentVariant {
                    segment: segment.to_string(),
                    variant: variant.clone(),
                });
            }
        }
    }

    /// A tick of `segment` planned `n` new actions decided by `variant`'s script.
    pub fn variant_planned(&self, segment: &str, variant: &str, n: u64) {
        self.variant_planned
            .get_or_create(&SegmentVariant {
                segment: segment.to_string(),
                variant: variant.to_string(),
            })
            .inc_by(n);
    }

    /// A pass over the ledger (one or more segments) took `took`.
    pub fn tick_duration(&self, took: Duration) {
        self.tick_duration.observe(took.as_secs_f64());
    }

    /// A delivery attempt of an action of `kind` ended with `outcome` after `took`.
    pub fn delivery(&self, kind: &str, outcome: &str, took: Duration) {
        self.deliveries
            .get_or_create(&KindOutcome {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.delivery_duration
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// An HTTP request to `route` (the pattern of the path it matched, e.g.
    /// `/v1/customers/{external_id}`, or `unmatched`) was answered with `status` after
    /// `took`.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let status = status.to_string();
        self.http_requests
            .get_or_create(&Status {
                status: status.clone(),
            })
            .inc();
        self.http_duration
            .get_or_create(&HttpRequest {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// A delivery through `channel` reached its transport (`up`) or not; returns whether
    /// the transport was failing before.
    pub fn transport(&self, channel: &str, up: bool) -> bool {
        self.transport_up
            .get_or_create(&Channel {
                channel: channel.to_string(),
            })
            .set(i64::from(up));
        self.transports
            .lock()
            .map(|mut t| t.insert(channel.to_string(), up) == Some(false))
            .unwrap_or(false)
    }

    /// The rule file of `segment` was refused at reload (it does not compile, is empty,
    /// unreadable, not UTF-8, or was deleted).
    pub fn rule_reload_failed(&self, segment: &str) {
        self.rule_reload_failures
            .get_or_create(&Segment {
                segment: segment.to_string(),
            })
            .inc();
    }

    /// Whether the rule file of `segment` differs from the version running (a refused
    /// file), or matches it again.
    pub fn set_rule_script_stale(&self, segment: &str, stale: bool) {
        self.rule_script_stale
            .get_or_create(&Segment {
                segment: segment.to_string(),
            })
            .set(i64::from(stale));
    }

    /// Whether this instance schedules the ticks.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
        self.leader_gauge.set(i64::from(leader));
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The process metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = prometheus_client::encoding::prometheus_text::encode(out, &self.registry);
    }
}

/// Gauges known at scrape time (read from the database), rendered after the process's.
#[derive(Debug, Default)]
pub struct ScrapeGauges {
    registry: Registry,
}

impl ScrapeGauges {
    /// A gauge family with one label.
    pub fn family(&mut self, name: &str, help: &str, label: &str, values: &[(String, i64)]) {
        let family: Family<Vec<(String, String)>, Gauge> = Family::default();
        for (value, n) in values {
            family
                .get_or_create(&vec![(label.to_string(), value.clone())])
                .set(*n);
        }
        self.registry.register(name, help, family);
    }

    /// A gauge family with two labels.
    pub fn family2(
        &mut self,
        name: &str,
        help: &str,
        labels: (&str, &str),
        values: &[(String, String, i64)],
    ) {
        let family: Family<Vec<(String, String)>, Gauge> = Family::default();
        for (a, b, n) in values {
            family
                .get_or_create(&vec![
                    (labels.0.to_string(), a.clone()),
                    (labels.1.to_string(), b.clone()),
                ])
                .set(*n);
        }
        self.registry.register(name, help, family);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: i64) {
        let gauge: Gauge = Gauge::default();
        gauge.set(value);
        self.registry.register(name, help, gauge);
    }

    pub fn render(&self, out: &mut String) {
        let _ = prometheus_client::encoding::prometheus_text::encode(out, &self.registry);
    }
}

/// The process's figures, as Prometheus's client libraries name them, read from
/// `/proc/self` at each scrape (nothing on systems without it).
#[derive(Debug)]
struct ProcessCollector;

/// What `/proc/self` says of this process.
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    threads: i64,
    start_time_seconds: f64,
    open_fds: i64,
    max_fds: i64,
}

/// The unit of the CPU times `/proc` reports: USER_HZ, 100 on every Linux ABI.
const USER_HZ: f64 = 100.0;

fn process_figures() -> Option<ProcessFigures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: fields are
    // counted after its closing parenthesis, which is field 3's start.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
    };
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0);
    // "Max open files            1024                 1048576              files"
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<i64>().ok())
        })
        .unwrap_or(0);
    Some(ProcessFigures {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        threads: field(20)? as i64,
        start_time_seconds: boot + field(22)? / USER_HZ,
        virtual_bytes: field(23)? as i64,
        resident_bytes: kib("VmRSS:")? * 1024,
        open_fds,
        max_fds,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = process_figures() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                p.threads,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(p.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
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
        assert!(
            out.contains(
                "relance_experiment_actions_planned_total{segment=\"smb\",variant=\"fast\"} 5"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "relance_experiment_actions_planned_total{segment=\"smb\",variant=\"champion\"} 7"
            ),
            "{out}"
        );
    }

    #[test]
    fn http_requests_are_timed_by_route_and_status_and_the_process_is_described() {
        let m = Metrics::new();
        m.http_request(
            "GET",
            "/v1/customers/{external_id}",
            200,
            Duration::from_millis(30),
        );
        m.http_request(
            "GET",
            "/v1/customers/{external_id}",
            404,
            Duration::from_millis(3),
        );
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "# TYPE relance_http_request_duration_seconds histogram",
            "relance_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/customers/{external_id}\",status=\"200\",le=\"0.05\"} 1",
            "relance_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/customers/{external_id}\",status=\"200\",le=\"0.025\"} 0",
            "relance_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/customers/{external_id}\",status=\"404\"} 1",
            "relance_http_requests_total{status=\"404\"} 1",
            "relance_build_info{version=\"",
            "# TYPE process_cpu_seconds_total counter",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(out.contains(line), "{line} not in\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.set_rule_script_stale("a\"b\\c", true);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("relance_rule_script_stale{segment=\"a\\\"b\\\\c\"} 1"),
            "{out}"
        );
    }
}
