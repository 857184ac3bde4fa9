//! The end-of-run summary: per partition and in total, records, pages, requests, retries, 429s,
//! bytes received and seconds, how each partition's read started (resumed, incremental from when, or
//! full and why), the sandbox limit a failed partition hit, the CPU time of the plugin and of the
//! destination, and the process's peak memory. Printed as a table for people, and written as JSON
//! (`--summary-json`) with the same content.

use std::time::Instant;

use serde::Serialize;

use crate::flow::Flow;
use crate::sandbox::Limit;
use crate::state::StatePlace;

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
    /// Request bytes sent (request lines, headers, bodies).
    pub bytes_out: u64,
    pub seconds: f64,
    /// CPU time of the calls into the plugin (its code and the host functions it called).
    pub cpu_seconds: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The read went on from an interrupted read's checkpoint.
    pub resumed: bool,
    /// The cursor filter's value, when the read was incremental.
    pub incremental_since: Option<String>,
    /// How the read started, for people: `resumed from checkpoint`, `incremental from T`,
    /// `full: object has no cursor`.
    pub start: String,
    /// The sandbox limit that ended the partition, if that is what ended it.
    pub limit: Option<Limit>,
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
            bytes_out: 0,
            seconds: 0.0,
            cpu_seconds: 0.0,
            outcome: Outcome::Done,
            resumed: false,
            incremental_since: None,
            start: String::new(),
            limit: None,
        }
    }
}

/// A whole run's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The flow's id.
    pub flow: String,
    /// The tenant the flow ran for, if the run has tenants.
    pub tenant: Option<String>,
    pub destination: String,
    /// Where the checkpoints are kept.
    pub state: String,
    pub partitions: Vec<PartitionReport>,
    pub records: u64,
    pub pages: u64,
    /// Every request, planning's included.
    pub requests: u64,
    /// Requests made to resolve and expand scopes: planning's, and the later pages of the listings
    /// read beside the partitions.
    pub planning_requests: u64,
    /// Wall time of planning (the flow checked, the first page of each scope's listing read),
    /// before the first partition started: a part of `seconds` that does not shrink with more
    /// partitions at once.
    pub planning_seconds: f64,
    /// Retried calls, planning's included.
    pub retries: u64,
    /// 429 answers, planning's included.
    pub rate_limited: u64,
    /// Response body bytes received, planning's included.
    pub bytes_in: u64,
    /// Request bytes sent, planning's included.
    pub bytes_out: u64,
    pub seconds: f64,
    /// CPU time of the calls into the plugin, planning's included.
    pub cpu_seconds: f64,
    /// CPU time of the destination's threads: checking the plugin's records, writing them, syncing.
    pub destination_cpu_seconds: f64,
    /// The most memory the host process held at once (its peak resident set), where the system says.
    pub peak_rss_bytes: Option<u64>,
    /// The CPU time of the whole host process by the flow's end (every thread: the plugin's, the
    /// destination's, the network's, start-up), where the system says. Beside the plugin's and the
    /// destination's, it shows how much of the machine the run took; for flows run side by side
    /// (tenants), it holds theirs too, as `peak_rss_bytes` does.
    pub process_cpu_seconds: Option<f64>,
}

impl Summary {
    pub fn new(flow: &Flow, partitions: Vec<PartitionReport>, started: Instant) -> Summary {
        Summary {
            flow: flow.id.clone(),
            tenant: flow.tenant.as_ref().map(|t| t.id.clone()),
            destination: flow.destination.to_string(),
            state: StatePlace::choose(&flow.destination, flow.state.as_ref()).describe(&flow.destination),
            records: partitions.iter().map(|p| p.records).sum(),
            pages: partitions.iter().map(|p| p.pages).sum(),
            requests: partitions.iter().map(|p| p.requests).sum(),
            planning_requests: 0,
            planning_seconds: 0.0,
            retries: partitions.iter().map(|p| p.retries).sum(),
            rate_limited: partitions.iter().map(|p| p.rate_limited).sum(),
            bytes_in: partitions.iter().map(|p| p.bytes_in).sum(),
            bytes_out: partitions.iter().map(|p| p.bytes_out).sum(),
            seconds: started.elapsed().as_secs_f64(),
            cpu_seconds: partitions.iter().map(|p| p.cpu_seconds).sum(),
            destination_cpu_seconds: 0.0,
            peak_rss_bytes: peak_rss_bytes(),
            process_cpu_seconds: crate::dest::process_cpu().map(|used| used.as_secs_f64()),
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
                // The reason says it was skipped, and why.
                Outcome::Skipped(r) if r.starts_with("skipped") => r.clone(),
                Outcome::Skipped(r) => format!("skipped: {r}"),
                Outcome::Failed(r) => format!("failed: {r}"),
                Outcome::Fatal(r) => format!("failed: {r}"),
            };
            let status = if p.start.is_empty() { status } else { format!("{status}; {}", p.start) };
            let name = format!("{} {}", p.object, p.scope);
            out.push_str(&format!(
                "{name:<width$}  {:>9}  {:>6}  {:>8}  {:>7}  {:>5}  {:>8.2}  {status}\n",
                p.records, p.pages, p.requests, p.retries, p.rate_limited, p.seconds
            ));
        }
        let rate = if self.seconds > 0.0 { self.records as f64 / self.seconds } else { 0.0 };
        out.push_str(&format!(
            "total: {} records, {} pages, {} requests ({} planning, in {:.2} s), {} retried, {} answered 429, {:.2} MiB in, \
             in {:.2} s ({rate:.0} records/s) into {}\n",
            self.records,
            self.pages,
            self.requests,
            self.planning_requests,
            self.planning_seconds,
            self.retries,
            self.rate_limited,
            self.bytes_in as f64 / (1 << 20) as f64,
            self.seconds,
            self.destination
        ));
        let process =
            self.process_cpu_seconds.map(|all| format!(", {all:.2} s in the whole process")).unwrap_or_default();
        out.push_str(&format!(
            "cpu: {:.2} s in the plugin, {:.2} s in the destination{process}\n",
            self.cpu_seconds, self.destination_cpu_seconds
        ));
        out
    }

    /// Add the figures of resolving and expanding scopes (planning, which took `took`, and the
    /// listings' later pages) to the totals.
    pub fn add_planning(&mut self, stats: &crate::gate::GateStats, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.planning_seconds = took.as_secs_f64();
        self.planning_requests = stats.requests.load(Relaxed);
        self.requests += self.planning_requests;
        self.retries += stats.retries.load(Relaxed);
        self.rate_limited += stats.rate_limited.load(Relaxed);
        self.bytes_in += stats.bytes_in.load(Relaxed);
        self.bytes_out += stats.bytes_out.load(Relaxed);
        self.cpu_seconds += stats.plugin_cpu_nanos.load(Relaxed) as f64 / 1e9;
    }
}

/// One tenant's figures over all its flows of a multi-tenant run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TenantReport {
    pub tenant: String,
    pub flows: usize,
    pub partitions: usize,
    pub records: u64,
    pub pages: u64,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub retries: u64,
    pub rate_limited: u64,
    /// From the tenant's first flow starting to its last ending.
    pub wall_seconds: f64,
    /// CPU time in the tenant's plugins.
    pub cpu_seconds: f64,
    /// CPU time of the tenant's destinations (their writer and committer threads).
    pub destination_cpu_seconds: f64,
    /// Partitions that failed, and flows that failed before or beyond their partitions.
    pub errors: Vec<String>,
}

impl TenantReport {
    /// Add one of the tenant's flows: its summary, and the error that ended it, if one did.
    pub fn add(&mut self, summary: &Summary, error: Option<&str>) {
        self.flows += 1;
        self.partitions += summary.partitions.len();
        self.records += summary.records;
        self.pages += summary.pages;
        self.requests += summary.requests;
        self.bytes_in += summary.bytes_in;
        self.bytes_out += summary.bytes_out;
        self.retries += summary.retries;
        self.rate_limited += summary.rate_limited;
        self.cpu_seconds += summary.cpu_seconds;
        self.destination_cpu_seconds += summary.destination_cpu_seconds;
        for p in &summary.partitions {
            if let Outcome::Failed(reason) | Outcome::Fatal(reason) = &p.outcome {
                self.errors.push(format!("{}: {} {}: {reason}", summary.flow, p.object, p.scope));
            }
        }
        if let Some(error) = error {
            self.errors.push(format!("{}: {error}", summary.flow));
        }
    }

    /// The per-tenant table, for people.
    pub fn render(reports: &[TenantReport]) -> String {
        let width = reports.iter().map(|r| r.tenant.len()).max().unwrap_or(6).max(6);
        let mut out = format!(
            "{:<width$}  {:>5}  {:>9}  {:>6}  {:>8}  {:>9}  {:>9}  {:>7}  {:>5}  {:>8}  {:>7}  {:>10}  errors\n",
            "tenant",
            "flows",
            "records",
            "pages",
            "requests",
            "MiB in",
            "KiB out",
            "retries",
            "429s",
            "wall s",
            "cpu s",
            "dest cpu s"
        );
        for r in reports {
            out.push_str(&format!(
                "{:<width$}  {:>5}  {:>9}  {:>6}  {:>8}  {:>9.2}  {:>9.1}  {:>7}  {:>5}  {:>8.2}  {:>7.2}  {:>10.2}  {}\n",
                r.tenant,
                r.flows,
                r.records,
                r.pages,
                r.requests,
                r.bytes_in as f64 / (1 << 20) as f64,
                r.bytes_out as f64 / 1024.0,
                r.retries,
                r.rate_limited,
                r.wall_seconds,
                r.cpu_seconds,
                r.destination_cpu_seconds,
                r.errors.len()
            ));
        }
        out
    }
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), in bytes; `None` off Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_is_read_from_proc() {
        assert_eq!(parse_vm_hwm("Name:\thost\nVmPeak:\t  9999 kB\nVmHWM:\t   51200 kB\n"), Some(50 << 20));
        assert_eq!(parse_vm_hwm("Name:\thost\n"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
