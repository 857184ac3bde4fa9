//! The limits of one sandbox, and how a hit is noticed and named.
//!
//! [`Limits`] is what a sandbox may use (one set per partition today; per tenant once tenants exist).
//! Each limit is enforced where wasmtime offers a hook:
//!
//! | limit | enforced by |
//! | --- | --- |
//! | memory | [`Limiter`], the store's `ResourceLimiter`: linear memory summed over the instance |
//! | deadline per call | the epoch callback (guest code) and a tokio timeout (waits in host calls) |
//! | data per call | `Store::set_hostcall_fuel`: bytes lifted out of the guest in one call |
//! | resources | `ResourceTable::set_max_capacity` and `Store::set_max_component_handles` |
//! | table elements | [`Limiter`] |
//! | log output per call | the capture of the guest's stdout and stderr (see `output`) |
//!
//! The code that stops a guest at a limit also trips the sandbox's [`Tripwire`], so that the failure
//! is reported as the [`Limit`] that was hit ("the plugin exceeded its 64 MiB memory limit in
//! read-page") rather than as whatever trap the guest died of.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use wasmtime::ResourceLimiter;

/// The most elements one table may have (the pooling allocator reserves this many per table).
pub const TABLE_ELEMENTS: usize = 20_000;

/// What one sandbox may use.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most linear memory the plugin's instance may hold, all its memories together.
    pub memory_bytes: usize,
    /// The longest one call into the plugin may take, running guest code or waiting on the host.
    pub call_timeout: Duration,
    /// The most data the host lifts out of the guest in one call (a page's records, a request's
    /// headers...): wasmtime's hostcall fuel.
    pub call_data_bytes: usize,
    /// The most resources (requests, responses, streams, pollables...) the plugin may hold at once.
    pub resources: usize,
    /// The most outgoing requests of one sandbox in flight at once; further requests wait their turn.
    pub requests_in_flight: usize,
    /// The most bytes the plugin may write to stdout and stderr together during one call.
    pub log_bytes_per_call: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(30),
            call_data_bytes: 16 << 20,
            resources: 1_000,
            requests_in_flight: 16,
            log_bytes_per_call: 1 << 20,
        }
    }
}

/// A limit a plugin hit, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Linear memory, in bytes.
    Memory(usize),
    /// Time per call.
    Deadline(Duration),
    /// Data lifted out of the guest in one call, in bytes.
    CallData(usize),
    /// Resource handles held at once.
    Resources(usize),
    /// Elements of one table.
    TableElements(usize),
    /// Bytes written to stdout and stderr in one call.
    LogOutput(usize),
}

impl Limit {
    /// A short, stable name: `memory`, `deadline`, `call-data`, `resources`, `table-elements`, `log-output`.
    pub fn name(&self) -> &'static str {
        match self {
            Limit::Memory(_) => "memory",
            Limit::Deadline(_) => "deadline",
            Limit::CallData(_) => "call-data",
            Limit::Resources(_) => "resources",
            Limit::TableElements(_) => "table-elements",
            Limit::LogOutput(_) => "log-output",
        }
    }

    /// The limit's value for people: `64 MiB`, `30 s`, `1000`.
    pub fn value(&self) -> String {
        match self {
            Limit::Memory(bytes) | Limit::CallData(bytes) | Limit::LogOutput(bytes) => human_bytes(*bytes),
            Limit::Deadline(time) => human_duration(*time),
            Limit::Resources(count) | Limit::TableElements(count) => count.to_string(),
        }
    }

    /// One line saying that the plugin needed `asked` bytes of memory to start, more than this limit
    /// (a memory limit) allows, and how to raise it.
    pub fn too_small_to_start(&self, asked: usize) -> String {
        let needed_mib = asked.div_ceil(1 << 20);
        format!(
            "the plugin needs at least {needed_mib} MiB of memory to start, more than its {} memory limit; raise the \
             limit (--memory-mib, or memory_mib in the tenants file)",
            self.value()
        )
    }

    /// One line saying that the plugin exceeded this limit in `call` (`read-page`).
    pub fn exceeded_in(&self, call: &str) -> String {
        let value = self.value();
        match self {
            Limit::Memory(_) => format!("the plugin exceeded its {value} memory limit in {call}"),
            Limit::Deadline(_) => format!("the plugin exceeded its {value} deadline per call in {call}"),
            Limit::CallData(_) => {
                format!("the plugin exceeded its {value} limit on data passed to the host in one call in {call}")
            }
            Limit::Resources(_) => format!("the plugin exceeded its limit of {value} open resource handles in {call}"),
            Limit::TableElements(_) => format!("the plugin exceeded its limit of {value} table elements in {call}"),
            Limit::LogOutput(_) => {
                format!("the plugin exceeded its {value} limit on stdout and stderr output per call in {call}")
            }
        }
    }
}

/// `{"name": "memory", "value": "64 MiB"}`.
impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Limit", 2)?;
        s.serialize_field("name", self.name())?;
        s.serialize_field("value", &self.value())?;
        s.end()
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} limit of {}", self.name(), self.value())
    }
}

impl std::error::Error for Limit {}

/// `64 MiB`, `1.5 KiB`, `12 bytes`.
pub fn human_bytes(bytes: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

/// `30 s`, `1.5 s`, `250 ms`.
fn human_duration(time: Duration) -> String {
    if time.subsec_nanos() == 0 {
        format!("{} s", time.as_secs())
    } else if time >= Duration::from_secs(1) {
        format!("{:.1} s", time.as_secs_f64())
    } else {
        format!("{} ms", time.as_millis())
    }
}

/// The first limit a sandbox's guest hit, shared by everything that enforces one.
#[derive(Clone, Debug, Default)]
pub struct Tripwire(Arc<Mutex<Option<Limit>>>);

impl Tripwire {
    /// Record that `limit` was hit (the first hit of a call is the one reported).
    pub fn trip(&self, limit: Limit) {
        let mut hit = self.0.lock().unwrap_or_else(|e| e.into_inner());
        hit.get_or_insert(limit);
    }

    /// The limit hit, if any.
    pub fn hit(&self) -> Option<Limit> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The store's resource limiter: memory (summed over the instance's memories) and table growth.
///
/// A growth past a limit trips the [`Tripwire`] and traps the guest at once (rather than letting the
/// guest see a failed `memory.grow` and die of it in its own way).
pub struct Limiter {
    memory_cap: usize,
    memory_used: usize,
    /// The last growth allowed, undone if the allocator then fails to grow.
    last_growth: usize,
    /// The memory the guest would have held had the growth refused at the limit been allowed.
    refused_total: Option<usize>,
    table_cap: usize,
    tripwire: Tripwire,
}

impl Limiter {
    /// A limiter allowing `memory_cap` bytes of linear memory in all.
    pub fn new(memory_cap: usize, tripwire: Tripwire) -> Limiter {
        Limiter { memory_cap, memory_used: 0, last_growth: 0, refused_total: None, table_cap: TABLE_ELEMENTS, tripwire }
    }

    /// How much memory the guest asked for in all when it hit the memory limit: what the refused
    /// growth would have made its total. `None` until a growth is refused.
    pub fn memory_asked(&self) -> Option<usize> {
        self.refused_total
    }

    fn exceeded(&self, limit: Limit) -> wasmtime::Error {
        self.tripwire.trip(limit);
        wasmtime::Error::new(limit)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let used = self.memory_used.saturating_add(growth);
        if used > self.memory_cap {
            self.refused_total.get_or_insert(used);
            return Err(self.exceeded(Limit::Memory(self.memory_cap)));
        }
        self.memory_used = used;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed by the limiter but refused by the allocator (the pool's own maximum): still the
        // memory limit as far as the plugin is concerned.
        self.memory_used -= self.last_growth;
        self.last_growth = 0;
        Err(error.context(self.exceeded(Limit::Memory(self.memory_cap))))
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_cap {
            return Err(self.exceeded(Limit::TableElements(self.table_cap)));
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context(self.exceeded(Limit::TableElements(self.table_cap))))
    }

    fn instances(&self) -> usize {
        super::engine::CORE_INSTANCES_PER_COMPONENT as usize
    }

    fn tables(&self) -> usize {
        super::engine::TABLES_PER_COMPONENT as usize
    }

    fn memories(&self) -> usize {
        super::engine::MEMORIES_PER_COMPONENT as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_like_people_write_them() {
        assert_eq!(Limit::Memory(64 << 20).value(), "64 MiB");
        assert_eq!(Limit::CallData(1536).value(), "1.5 KiB");
        assert_eq!(Limit::LogOutput(12).value(), "12 bytes");
        assert_eq!(Limit::Memory(1 << 30).value(), "1 GiB");
        assert_eq!(Limit::Deadline(Duration::from_secs(30)).value(), "30 s");
        assert_eq!(Limit::Deadline(Duration::from_millis(1500)).value(), "1.5 s");
        assert_eq!(Limit::Deadline(Duration::from_millis(250)).value(), "250 ms");
        assert_eq!(Limit::Resources(1000).value(), "1000");
    }

    #[test]
    fn messages_name_the_limit_its_value_and_the_call() {
        assert_eq!(
            Limit::Memory(64 << 20).exceeded_in("read-page"),
            "the plugin exceeded its 64 MiB memory limit in read-page"
        );
        assert_eq!(
            Limit::Deadline(Duration::from_secs(2)).exceeded_in("list-scopes"),
            "the plugin exceeded its 2 s deadline per call in list-scopes"
        );
        assert_eq!(
            serde_json::to_value(Limit::Resources(1000)).unwrap(),
            serde_json::json!({"name": "resources", "value": "1000"})
        );
    }

    #[test]
    fn memory_is_summed_over_memories_and_trips_once_past_the_cap() {
        let tripwire = Tripwire::default();
        let mut limiter = Limiter::new(10 << 20, tripwire.clone());
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap(), "a second memory of 4 MiB fits in 10");
        assert_eq!(tripwire.hit(), None);
        let error = limiter.memory_growing(4 << 20, 7 << 20, None).unwrap_err();
        assert_eq!(error.downcast_ref::<Limit>(), Some(&Limit::Memory(10 << 20)));
        assert_eq!(tripwire.hit(), Some(Limit::Memory(10 << 20)));
        assert!(limiter.memory_growing(4 << 20, 6 << 20, None).unwrap(), "growing to exactly the cap is allowed");
    }

    #[test]
    fn a_failed_growth_is_given_back_and_reported_as_the_memory_limit() {
        let tripwire = Tripwire::default();
        let mut limiter = Limiter::new(10 << 20, tripwire.clone());
        assert!(limiter.memory_growing(0, 8 << 20, None).unwrap());
        assert!(limiter.memory_grow_failed(wasmtime::format_err!("pool exhausted")).is_err());
        assert_eq!(tripwire.hit(), Some(Limit::Memory(10 << 20)));
        assert!(limiter.memory_growing(0, 9 << 20, None).unwrap(), "the failed growth no longer counts");
    }

    #[test]
    fn tables_are_capped_and_the_first_hit_is_kept() {
        let tripwire = Tripwire::default();
        let mut limiter = Limiter::new(1 << 20, tripwire.clone());
        assert!(limiter.table_growing(0, TABLE_ELEMENTS, None).unwrap());
        assert!(limiter.table_growing(0, TABLE_ELEMENTS + 1, None).is_err());
        assert!(limiter.memory_growing(0, 2 << 20, None).is_err());
        assert_eq!(tripwire.hit(), Some(Limit::TableElements(TABLE_ELEMENTS)), "the first hit is the one reported");
    }
}
