//! CloudWatch metrics in the Embedded Metric Format: one JSON line on stdout per measurement,
//! which CloudWatch Logs turns into a metric. No SDK, no API call, nothing on the request's
//! path but a formatted line.
//!
//! Every metric has the `function` dimension (the binary) and at most one more (an outcome, a
//! policy), so the dashboard and alarms in `template.yaml` can aggregate by either. The namespace
//! is `METRICS_NAMESPACE` (the stack's name on AWS; `saas` otherwise). Off Lambda the lines go
//! nowhere unless `METRICS_STDOUT=1` is set, or the tests install their sink (`capture`, `dev`
//! only).

use std::sync::OnceLock;
#[cfg(feature = "dev")]
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value, json};

/// What a metric counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

enum Sink {
    Stdout,
    Off,
    /// The tests' sink (`dev` only).
    #[cfg(feature = "dev")]
    Captured(Mutex<Vec<Value>>),
}

static SINK: OnceLock<Sink> = OnceLock::new();
static FUNCTION: OnceLock<&'static str> = OnceLock::new();

fn sink() -> &'static Sink {
    SINK.get_or_init(|| {
        let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let asked = std::env::var("METRICS_STDOUT").is_ok_and(|v| v == "1");
        if on_lambda || asked { Sink::Stdout } else { Sink::Off }
    })
}

/// Names the function every metric of this process is recorded for (`telemetry::init` does).
pub fn set_function(function: &'static str) {
    let _ = FUNCTION.set(function);
}

/// Keeps every metric in memory instead of printing it (tests): call before the first metric.
#[cfg(feature = "dev")]
pub fn capture() {
    let _ = SINK.set(Sink::Captured(Mutex::new(Vec::new())));
}

/// The metrics captured so far (with `capture`), as the JSON lines CloudWatch would receive.
#[cfg(feature = "dev")]
pub fn captured() -> Vec<Value> {
    match sink() {
        Sink::Captured(lines) => lines.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        _ => Vec::new(),
    }
}

/// Adds one to a count.
pub fn count(name: &'static str, dimension: Option<(&'static str, &str)>) {
    record(name, Unit::Count, 1.0, dimension);
}

/// Records a duration.
pub fn milliseconds(name: &'static str, value: f64, dimension: Option<(&'static str, &str)>) {
    record(name, Unit::Milliseconds, value, dimension);
}

pub fn record(name: &'static str, unit: Unit, value: f64, dimension: Option<(&'static str, &str)>) {
    let sink = sink();
    if matches!(sink, Sink::Off) {
        return;
    }
    let line = line(name, unit, value, dimension);
    match sink {
        Sink::Stdout => println!("{line}"),
        #[cfg(feature = "dev")]
        Sink::Captured(lines) => lines.lock().unwrap_or_else(PoisonError::into_inner).push(line),
        Sink::Off => {}
    }
}

fn line(name: &str, unit: Unit, value: f64, dimension: Option<(&str, &str)>) -> Value {
    let namespace = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "saas".to_owned());
    let function = FUNCTION.get().copied().unwrap_or("unknown");
    let mut dimensions = vec!["function"];
    let mut root = Map::new();
    root.insert("function".into(), json!(function));
    if let Some((key, value)) = dimension {
        dimensions.push(key);
        root.insert(key.into(), json!(value));
    }
    root.insert(name.into(), json!(value));
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    root.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp as i64, "CloudWatchMetrics": [{
            "Namespace": namespace, "Dimensions": [dimensions],
            "Metrics": [{"Name": name, "Unit": unit.as_str()}]}]}),
    );
    Value::Object(root)
}

/// How long an SQS message waited before this receive, from its `SentTimestamp` attribute
/// (milliseconds since the epoch), recorded as `QueueLag`.
pub fn queue_lag(attributes: &std::collections::HashMap<String, String>) {
    let sent = attributes.get("SentTimestamp").and_then(|t| t.parse::<i64>().ok());
    if let Some(sent) = sent {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        milliseconds("QueueLag", (now as i64 - sent).max(0) as f64, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_what_cloudwatch_reads_as_one_metric() {
        let event = line("StripeEvents", Unit::Count, 1.0, Some(("outcome", "applied")));
        let directive = &event["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["function", "outcome"]]));
        assert_eq!(directive["Metrics"], json!([{"Name": "StripeEvents", "Unit": "Count"}]));
        assert_eq!((event["outcome"].as_str(), event["StripeEvents"].as_f64()), (Some("applied"), Some(1.0)));
        assert!(event["_aws"]["Timestamp"].as_i64().is_some_and(|t| t > 1_700_000_000_000));
        let plain = line("QueueLag", Unit::Milliseconds, 12.5, None);
        assert_eq!(plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["function"]]));
    }
}
