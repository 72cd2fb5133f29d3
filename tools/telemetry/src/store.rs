//! The traces kept in memory: spans as OTLP delivers them, grouped by trace, the oldest trace
//! forgotten first once `capacity` traces are kept.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::Serialize;

/// One span, flattened: ids in hex, attributes as text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpanRecord {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    /// `service.name` of the process that recorded it (the host, a provider).
    pub service: String,
    pub start_unix_nanos: u64,
    pub duration_micros: u64,
    pub attributes: BTreeMap<String, String>,
    /// The span's error status message, when it ended in error.
    pub error: Option<String>,
}

/// A trace as stored: its spans, in the order they started.
#[derive(Clone, Debug, Serialize)]
pub struct Trace {
    pub trace_id: String,
    /// Every service that recorded a span of it.
    pub services: BTreeSet<String>,
    /// True when exactly one span has no parent among the trace's spans: every other span hangs
    /// off it, so the trace is one tree and not pieces.
    pub connected: bool,
    pub duration_micros: u64,
    pub spans: Vec<SpanRecord>,
}

pub struct TraceStore {
    spans: HashMap<String, Vec<SpanRecord>>,
    arrival: VecDeque<String>,
    capacity: usize,
}

impl TraceStore {
    pub fn new(capacity: usize) -> Self {
        Self {
            spans: HashMap::new(),
            arrival: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Keeps the request's spans and returns them.
    pub fn ingest(&mut self, request: ExportTraceServiceRequest) -> Vec<SpanRecord> {
        let mut kept = Vec::new();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .map(|a| text(a.value.as_ref()))
                .unwrap_or_else(|| "unknown".into());
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                let trace_id = hex(&span.trace_id);
                let error = span
                    .status
                    .as_ref()
                    .filter(|s| s.code == StatusCode::Error as i32)
                    .map(|s| s.message.clone());
                let record = SpanRecord {
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    service: service.clone(),
                    start_unix_nanos: span.start_time_unix_nano,
                    duration_micros: span
                        .end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano)
                        / 1000,
                    attributes: attributes(&span.attributes),
                    error,
                };
                kept.push(record.clone());
                self.keep(trace_id, record);
            }
        }
        kept
    }

    fn keep(&mut self, trace_id: String, span: SpanRecord) {
        if !self.spans.contains_key(&trace_id) {
            if self.arrival.len() == self.capacity {
                if let Some(oldest) = self.arrival.pop_front() {
                    self.spans.remove(&oldest);
                }
            }
            self.arrival.push_back(trace_id.clone());
        }
        self.spans.entry(trace_id).or_default().push(span);
    }

    pub fn trace(&self, trace_id: &str) -> Option<Trace> {
        let spans = self.spans.get(trace_id)?;
        let mut spans = spans.clone();
        spans.sort_by_key(|s| s.start_unix_nanos);
        let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        let roots = spans
            .iter()
            .filter(|s| {
                s.parent_span_id
                    .as_deref()
                    .is_none_or(|parent| !ids.contains(parent))
            })
            .count();
        let start = spans.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
        let end = spans
            .iter()
            .map(|s| s.start_unix_nanos + s.duration_micros * 1000)
            .max()
            .unwrap_or(0);
        Some(Trace {
            trace_id: trace_id.to_string(),
            services: spans.iter().map(|s| s.service.clone()).collect(),
            connected: roots == 1,
            duration_micros: end.saturating_sub(start) / 1000,
            spans,
        })
    }

    /// The traces in which some span's attribute contains `needle`, in the order they started: for
    /// an order id, the request that placed the order (its `Location` names the order, and notify
    /// writes the order's key), then any request that asked for its status since.
    pub fn find(&self, needle: &str) -> Vec<Trace> {
        let mut found: Vec<Trace> = self
            .arrival
            .iter()
            .filter(|id| {
                self.spans[*id]
                    .iter()
                    .any(|s| s.attributes.values().any(|v| v.contains(needle)))
            })
            .filter_map(|id| self.trace(id))
            .collect();
        found.sort_by_key(|t| t.spans.first().map(|s| s.start_unix_nanos));
        found
    }

    /// The newest `limit` traces.
    pub fn recent(&self, limit: usize) -> Vec<Trace> {
        self.arrival
            .iter()
            .rev()
            .take(limit)
            .filter_map(|id| self.trace(id))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.arrival.len()
    }
}

/// A trace as an indented tree, one span a line: what a person reads in a terminal.
pub fn render_tree(trace: &Trace) -> String {
    let mut children: BTreeMap<Option<&str>, Vec<&SpanRecord>> = BTreeMap::new();
    let ids: BTreeSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    for span in &trace.spans {
        let parent = span.parent_span_id.as_deref().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    let start = trace
        .spans
        .iter()
        .map(|s| s.start_unix_nanos)
        .min()
        .unwrap_or(0);
    let mut out = format!(
        "trace {} ({} spans, {:.3} ms, services: {})\n",
        trace.trace_id,
        trace.spans.len(),
        trace.duration_micros as f64 / 1000.0,
        trace
            .services
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stack: Vec<(&SpanRecord, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|s| (*s, 0)).collect())
        .unwrap_or_default();
    while let Some((span, depth)) = stack.pop() {
        let detail: Vec<String> = [
            "func",
            "id",
            "link_name",
            "http.route",
            "url.path",
            "messaging.destination.name",
            "key",
            "outcome",
        ]
        .iter()
        .filter_map(|k| span.attributes.get(*k).map(|v| format!("{k}={v}")))
        .collect();
        out += &format!(
            "{:indent$}{} [{}] +{:.3} ms {:.3} ms{}{}\n",
            "",
            span.name,
            span.service,
            span.start_unix_nanos.saturating_sub(start) as f64 / 1e6,
            span.duration_micros as f64 / 1000.0,
            if detail.is_empty() {
                String::new()
            } else {
                format!(" {}", detail.join(" "))
            },
            span.error
                .as_ref()
                .map(|e| format!(" ERROR {e}"))
                .unwrap_or_default(),
            indent = depth * 2
        );
        if let Some(kids) = children.get(&Some(span.span_id.as_str())) {
            stack.extend(kids.iter().rev().map(|s| (*s, depth + 1)));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn string(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
        }
    }

    fn span(trace: u8, id: u8, parent: Option<u8>, name: &str, attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            start_time_unix_nano: 1_000_000 * u64::from(id),
            end_time_unix_nano: 1_000_000 * u64::from(id) + 500_000,
            attributes: attrs,
            ..Default::default()
        }
    }

    fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn spans_of_one_trace_from_several_services_make_one_connected_trace() {
        let mut store = TraceStore::new(10);
        store.ingest(export(
            "wasmcloud-host",
            vec![span(1, 1, None, "POST /Order", vec![])],
        ));
        store.ingest(export(
            "keyvalue",
            vec![span(1, 2, Some(1), "set", vec![string("key", "order/abc")])],
        ));
        let found = store.find("abc");
        assert_eq!(found.len(), 1);
        assert!(found[0].connected);
        assert_eq!(
            found[0].services.iter().collect::<Vec<_>>(),
            ["keyvalue", "wasmcloud-host"]
        );
        assert!(render_tree(&found[0]).contains("  set [keyvalue]"));
    }

    #[test]
    fn a_span_whose_parent_never_arrived_makes_the_trace_unconnected() {
        let mut store = TraceStore::new(10);
        store.ingest(export(
            "host",
            vec![
                span(1, 1, None, "a", vec![]),
                span(1, 3, Some(2), "b", vec![]),
            ],
        ));
        assert!(!store.trace(&hex(&[1; 16])).unwrap().connected);
    }

    #[test]
    fn the_oldest_trace_is_forgotten_once_the_store_is_full() {
        let mut store = TraceStore::new(2);
        for trace in 1..=3 {
            store.ingest(export("host", vec![span(trace, 1, None, "x", vec![])]));
        }
        assert_eq!(store.len(), 2);
        assert!(store.trace(&hex(&[1; 16])).is_none());
        assert_eq!(store.recent(5)[0].trace_id, hex(&[3; 16]));
    }
}
