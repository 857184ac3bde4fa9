//! The end-of-run summary: per partition and in total, records, pages, requests, retries, 429s, bytes
//! received and seconds.

use std::time::Instant;

use serde::Serialize;

use crate::flow::Flow;

/// How a partition ended.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// Every page was read and written.
    Done,
    /// Not read, for a reason that concerns this partition only (403, 404).
    Skipped(String),
    /// Failed; the other partitions went on.
    Failed(String),
    /// Failed in a way that ends the whole run (a refused token, an invalid request).
    Fatal(String),
}

/// One partition's figures.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionReport {
    pub object: String,
    pub scope: String,
    pub records: u64,
    pub pages: u64,
    pub requests: u64,
    /// Calls retried after a 429, a 5xx or a network failure.
    pub retries: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Response body bytes received (as sent on the wire, before decompression).
    pub bytes_in: u64,
    pub seconds: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl PartitionReport {
    pub fn new(object: &str, scope: String) -> Self {
        PartitionReport {
            object: object.to_owned(),
            scope,
            records: 0,
            pages: 0,
            requests: 0,
            retries: 0,
            rate_limited: 0,
            bytes_in: 0,
            seconds: 0.0,
            outcome: Outcome::Done,
        }
    }
}

/// A whole run's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub destination: String,
    pub partitions: Vec<PartitionReport>,
    pub records: u64,
    pub pages: u64,
    /// Every request, planning's included.
    pub requests: u64,
    /// Requests made while planning (resolving and expanding scopes).
    pub planning_requests: u64,
    /// Retried calls, planning's included.
    pub retries: u64,
    /// 429 answers, planning's included.
    pub rate_limited: u64,
    /// Response body bytes received, planning's included.
    pub bytes_in: u64,
    pub seconds: f64,
}

impl Summary {
    pub fn new(flow: &Flow, partitions: Vec<PartitionReport>, started: Instant) -> Summary {
        Summary {
            destination: flow.destination.to_string(),
            records: partitions.iter().map(|p| p.records).sum(),
            pages: partitions.iter().map(|p| p.pages).sum(),
            requests: partitions.iter().map(|p| p.requests).sum(),
            planning_requests: 0,
            retries: partitions.iter().map(|p| p.retries).sum(),
            rate_limited: partitions.iter().map(|p| p.rate_limited).sum(),
            bytes_in: partitions.iter().map(|p| p.bytes_in).sum(),
            seconds: started.elapsed().as_secs_f64(),
            partitions,
        }
    }

    /// The summary as a table, for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let width = self.partitions.iter().map(|p| p.object.len() + p.scope.len() + 1).max().unwrap_or(9).max(9);
        out.push_str(&format!(
            "{:<width$}  {:>9}  {:>6}  {:>8}  {:>7}  {:>5}  {:>8}  status\n",
            "partition", "records", "pages", "requests", "retries", "429s", "seconds"
        ));
        for p in &self.partitions {
            let status = match &p.outcome {
                Outcome::Done => "done".to_owned(),
                Outcome::Skipped(r) => format!("skipped: {r}"),
                Outcome::Failed(r) => format!("failed: {r}"),
                Outcome::Fatal(r) => format!("failed: {r}"),
            };
            let name = format!("{} {}", p.object, p.scope);
            out.push_str(&format!(
                "{name:<width$}  {:>9}  {:>6}  {:>8}  {:>7}  {:>5}  {:>8.2}  {status}\n",
                p.records, p.pages, p.requests, p.retries, p.rate_limited, p.seconds
            ));
        }
        let rate = if self.seconds > 0.0 { self.records as f64 / self.seconds } else { 0.0 };
        out.push_str(&format!(
            "total: {} records, {} pages, {} requests ({} planning), {} retried, {} answered 429, {:.2} MiB in, \
             in {:.2} s ({rate:.0} records/s) into {}\n",
            self.records,
            self.pages,
            self.requests,
            self.planning_requests,
            self.retries,
            self.rate_limited,
            self.bytes_in as f64 / (1 << 20) as f64,
            self.seconds,
            self.destination
        ));
        out
    }

    /// Add the figures of planning (resolving and expanding scopes) to the totals.
    pub fn add_planning(&mut self, stats: &crate::gate::GateStats) {
        use std::sync::atomic::Ordering::Relaxed;
        self.planning_requests = stats.requests.load(Relaxed);
        self.requests += self.planning_requests;
        self.retries += stats.retries.load(Relaxed);
        self.rate_limited += stats.rate_limited.load(Relaxed);
        self.bytes_in += stats.bytes_in.load(Relaxed);
    }
}
