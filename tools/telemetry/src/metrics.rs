//! What `GET /metrics` answers, in Prometheus's text format: counters taken from the spans the
//! receiver is sent (requests and their latency, component invocations, deliveries and their
//! outcome), orders settled (from billing's payment results on NATS, each order once), and, read
//! from NATS's monitoring endpoint at each scrape, the streams and every durable consumer's lag.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::Write as _;

use serde_json::Value;

use crate::store::SpanRecord;

/// Latency buckets, in seconds: from a hello-world request to the HTTP provider's 30 s deadline.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];
/// Distinct request paths counted by name; any further path (a client trying random ones) is
/// counted as `other`, so the series stay bounded.
const MAX_ROUTES: usize = 32;
/// How many settled order ids are remembered to count each order once though billing announces
/// it again on a redelivery (redeliveries come within minutes, long before this many orders).
const REMEMBERED_ORDERS: usize = 200_000;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: BTreeMap<(String, String, String), u64>,
    latency: BTreeMap<(String, String), Histogram>,
    invocations: BTreeMap<String, u64>,
    deliveries: BTreeMap<(String, String), u64>,
    settled: BTreeMap<String, u64>,
    settled_ids: HashSet<String>,
    settled_order: VecDeque<String>,
    spans: u64,
}

impl Metrics {
    pub fn observe(&mut self, span: &SpanRecord) {
        self.spans += 1;
        let attr = |name: &str| span.attributes.get(name).cloned().unwrap_or_default();
        match span.name.as_str() {
            "component_invocation" => *self.invocations.entry(attr("id")).or_default() += 1,
            _ if span.attributes.contains_key("http.response.status_code") => {
                let method = attr("http.request.method");
                let mut route = attr("url.path");
                let known = self.latency.keys().any(|(_, r)| *r == route);
                if !known && self.latency.len() >= MAX_ROUTES {
                    route = "other".into();
                }
                let status = attr("http.response.status_code");
                *self
                    .requests
                    .entry((method.clone(), route.clone(), status))
                    .or_default() += 1;
                let histogram = self.latency.entry((method, route)).or_default();
                let seconds = span.duration_micros as f64 / 1e6;
                for (i, bound) in BUCKETS.iter().enumerate() {
                    if seconds <= *bound {
                        histogram.counts[i] += 1;
                    }
                }
                histogram.count += 1;
                histogram.sum += seconds;
            }
            _ if span.attributes.contains_key("outcome")
                && span
                    .attributes
                    .contains_key("messaging.consumer.group.name") =>
            {
                *self
                    .deliveries
                    .entry((attr("messaging.consumer.group.name"), attr("outcome")))
                    .or_default() += 1;
            }
            _ => {}
        }
    }

    /// One payment result as billing announced it; an order already counted is not counted again.
    pub fn settled(&mut self, order_id: &str, outcome: &str) {
        if !self.settled_ids.insert(order_id.to_string()) {
            return;
        }
        self.settled_order.push_back(order_id.to_string());
        if self.settled_order.len() > REMEMBERED_ORDERS {
            if let Some(oldest) = self.settled_order.pop_front() {
                self.settled_ids.remove(&oldest);
            }
        }
        *self.settled.entry(outcome.to_string()).or_default() += 1;
    }

    /// The text exposition; `jsz` is NATS's `/jsz?accounts=true&streams=true&consumers=true&config=true`.
    pub fn render(&self, traces_kept: usize, jsz: Option<&Value>) -> String {
        let mut out = String::new();
        family(&mut out, "orders_settled_total", "counter", "Orders billing settled since the receiver started, by outcome (paid, insufficient_funds, ...), each order once");
        for (outcome, n) in &self.settled {
            let _ = writeln!(
                out,
                "orders_settled_total{{outcome=\"{}\"}} {n}",
                escape(outcome)
            );
        }
        family(
            &mut out,
            "orders_http_requests_total",
            "counter",
            "Requests the HTTP server provider answered, by method, path and status",
        );
        for ((method, route, status), n) in &self.requests {
            let _ = writeln!(
                out,
                "orders_http_requests_total{{method=\"{}\",path=\"{}\",status=\"{}\"}} {n}",
                escape(method),
                escape(route),
                escape(status)
            );
        }
        family(
            &mut out,
            "orders_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival at the HTTP server provider to its answer",
        );
        for ((method, route), h) in &self.latency {
            let labels = format!("method=\"{}\",path=\"{}\"", escape(method), escape(route));
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "orders_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "orders_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "orders_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "orders_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        family(
            &mut out,
            "orders_component_invocations_total",
            "counter",
            "Invocations of each component by the host",
        );
        for (component, n) in &self.invocations {
            let _ = writeln!(
                out,
                "orders_component_invocations_total{{component=\"{}\"}} {n}",
                escape(component)
            );
        }
        family(&mut out, "orders_deliveries_total", "counter", "Messages the messaging provider delivered, by durable consumer and outcome (acked, retried, dead_lettered, unreachable)");
        for ((consumer, outcome), n) in &self.deliveries {
            let _ = writeln!(
                out,
                "orders_deliveries_total{{consumer=\"{}\",outcome=\"{}\"}} {n}",
                escape(consumer),
                escape(outcome)
            );
        }
        if let Some(jsz) = jsz {
            render_nats(&mut out, jsz);
        }
        family(
            &mut out,
            "orders_telemetry_spans_received_total",
            "counter",
            "Spans this receiver was sent",
        );
        let _ = writeln!(out, "orders_telemetry_spans_received_total {}", self.spans);
        family(
            &mut out,
            "orders_telemetry_traces_kept",
            "gauge",
            "Traces this receiver keeps",
        );
        let _ = writeln!(out, "orders_telemetry_traces_kept {traces_kept}");
        out
    }
}

fn render_nats(out: &mut String, jsz: &Value) {
    let streams: Vec<&Value> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .collect();
    family(
        out,
        "orders_stream_messages",
        "gauge",
        "Messages each JetStream stream holds (DEADLETTER: the dead letters)",
    );
    for stream in &streams {
        let _ = writeln!(
            out,
            "orders_stream_messages{{stream=\"{}\"}} {}",
            escape(stream["name"].as_str().unwrap_or_default()),
            stream["state"]["messages"].as_u64().unwrap_or(0)
        );
    }
    let durable: Vec<&Value> = streams
        .iter()
        .flat_map(|s| s["consumer_detail"].as_array().into_iter().flatten())
        .filter(|c| c["config"]["durable_name"].is_string())
        .collect();
    for (name, field, kind, help) in [
        (
            "orders_consumer_waiting",
            "num_pending",
            "gauge",
            "Messages a durable consumer has not been given yet: its lag",
        ),
        (
            "orders_consumer_in_hand",
            "num_ack_pending",
            "gauge",
            "Messages a durable consumer was given and has not acknowledged",
        ),
        (
            "orders_consumer_redelivered",
            "num_redelivered",
            "gauge",
            "Messages a durable consumer was given more than once and still has",
        ),
    ] {
        family(out, name, kind, help);
        for consumer in &durable {
            let _ = writeln!(
                out,
                "{name}{{consumer=\"{}\"}} {}",
                escape(consumer["name"].as_str().unwrap_or_default()),
                consumer[field].as_u64().unwrap_or(0)
            );
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &str, micros: u64, attributes: &[(&str, &str)]) -> SpanRecord {
        SpanRecord {
            span_id: "1".into(),
            parent_span_id: None,
            name: name.into(),
            service: "s".into(),
            start_unix_nanos: 0,
            duration_micros: micros,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            error: None,
        }
    }

    #[test]
    fn a_request_span_counts_the_request_and_its_latency() {
        let mut metrics = Metrics::default();
        let request = [
            ("http.request.method", "POST"),
            ("url.path", "/Order"),
            ("http.response.status_code", "202"),
        ];
        metrics.observe(&span("POST /Order", 3_000, &request));
        let text = metrics.render(0, None);
        assert!(text.contains(
            "orders_http_requests_total{method=\"POST\",path=\"/Order\",status=\"202\"} 1"
        ));
        assert!(text.contains("orders_http_request_duration_seconds_bucket{method=\"POST\",path=\"/Order\",le=\"0.0025\"} 0"));
        assert!(text.contains("orders_http_request_duration_seconds_bucket{method=\"POST\",path=\"/Order\",le=\"0.005\"} 1"));
    }

    #[test]
    fn an_order_announced_twice_is_settled_once() {
        let mut metrics = Metrics::default();
        metrics.settled("o-1", "paid");
        metrics.settled("o-1", "paid");
        metrics.settled("o-2", "insufficient_funds");
        let text = metrics.render(0, None);
        assert!(text.contains("orders_settled_total{outcome=\"paid\"} 1"));
        assert!(text.contains("orders_settled_total{outcome=\"insufficient_funds\"} 1"));
    }

    #[test]
    fn paths_beyond_the_bound_are_counted_as_other() {
        let mut metrics = Metrics::default();
        for i in 0..MAX_ROUTES + 5 {
            let path = format!("/random-{i}");
            metrics.observe(&span(
                "GET",
                10,
                &[("url.path", &path), ("http.response.status_code", "404")],
            ));
        }
        assert_eq!(metrics.latency.len(), MAX_ROUTES + 1);
        assert!(metrics
            .render(0, None)
            .contains("path=\"other\",status=\"404\"} 5"));
    }

    #[test]
    fn consumer_lag_comes_from_the_monitoring_endpoint() {
        let jsz = serde_json::json!({"account_details": [{"stream_detail": [{"name": "ORDERS", "state": {"messages": 7},
            "consumer_detail": [{"name": "billing", "num_pending": 3, "num_ack_pending": 1, "num_redelivered": 0, "config": {"durable_name": "billing"}}]}]}]});
        let text = Metrics::default().render(0, Some(&jsz));
        assert!(text.contains("orders_stream_messages{stream=\"ORDERS\"} 7"));
        assert!(text.contains("orders_consumer_waiting{consumer=\"billing\"} 3"));
        assert!(text.contains("orders_consumer_in_hand{consumer=\"billing\"} 1"));
    }
}
