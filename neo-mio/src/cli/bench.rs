//! `neo bench`: a load generator on the Rust client, for any NEO cluster
//! (ours or NEO/py's: the protocol is the same, so one client measures
//! both in one run).
//!
//! Workloads, each timed per operation:
//! - `rtt`: the plain loopback TCP round trip (an echo thread), the floor
//!   any NEO request pays;
//! - `commit`: one client commits T transactions of K objects of S bytes;
//! - `cold`: a fresh client loads every committed object once;
//! - `hot`: the same client loads them again (its cache);
//! - `clients-commit` / `clients-load`: N clients at once, each committing
//!   T transactions / loading every object with a cold cache;
//! - `conflicts`: N clients increment a few shared counters, resolving
//!   conflicts by merging (as BTrees.Length does).
//!
//! Results print as a table, or as JSON with `--json`; with `--pid`, the
//! resident memory of those (server) processes is reported too.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use neo_proto::Oid;

use crate::client::{Error, NeoClient};

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Rtt,
    Commit,
    Cold,
    Hot,
    ClientsCommit,
    ClientsLoad,
    Conflicts,
}

impl Workload {
    pub const ALL: [Workload; 7] = [
        Workload::Rtt,
        Workload::Commit,
        Workload::Cold,
        Workload::Hot,
        Workload::ClientsCommit,
        Workload::ClientsLoad,
        Workload::Conflicts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Rtt => "rtt",
            Workload::Commit => "commit",
            Workload::Cold => "cold",
            Workload::Hot => "hot",
            Workload::ClientsCommit => "clients-commit",
            Workload::ClientsLoad => "clients-load",
            Workload::Conflicts => "conflicts",
        }
    }

    /// What one operation is, for the table.
    fn unit(self) -> &'static str {
        match self {
            Workload::Rtt => "round trip",
            Workload::Commit | Workload::ClientsCommit | Workload::Conflicts => "transaction",
            Workload::Cold | Workload::Hot | Workload::ClientsLoad => "load",
        }
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Workload, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!("unknown workload {text:?} (one of {})", names.join(", "))
            })
    }
}

/// How much work each workload does.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub workloads: Vec<Workload>,
    pub transactions: usize,
    pub objects: usize,
    pub size: usize,
    pub clients: usize,
    /// Shared counters of the conflict mix.
    pub hot_objects: usize,
    pub round_trips: usize,
    /// Server processes whose memory to report.
    pub pids: Vec<u32>,
    /// Report the progress of long workloads on stderr.
    pub progress: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            workloads: Workload::ALL.to_vec(),
            transactions: 200,
            objects: 10,
            size: 100,
            clients: 8,
            hot_objects: 4,
            round_trips: 5000,
            pids: Vec::new(),
            progress: false,
        }
    }
}

/// The measure of one workload.
#[derive(Debug, Clone)]
pub struct Measure {
    pub workload: Workload,
    /// Operations done (transactions, loads, round trips).
    pub ops: usize,
    /// Objects stored or loaded.
    pub objects: usize,
    pub elapsed: Duration,
    /// Per-operation latencies, sorted.
    latencies: Vec<Duration>,
    pub errors: usize,
    /// Conflicts met (the conflict mix).
    pub conflicts: usize,
}

impl Measure {
    fn new(workload: Workload, elapsed: Duration, mut latencies: Vec<Duration>) -> Measure {
        latencies.sort_unstable();
        Measure {
            workload,
            ops: latencies.len(),
            objects: 0,
            elapsed,
            latencies,
            errors: 0,
            conflicts: 0,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn objects_per_second(&self) -> f64 {
        self.objects as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at `fraction` (0.5: median), in µs.
    pub fn percentile_us(&self, fraction: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index =
            ((self.latencies.len() as f64 * fraction) as usize).min(self.latencies.len() - 1);
        self.latencies[index].as_secs_f64() * 1e6
    }

    pub fn max_us(&self) -> f64 {
        self.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
}

/// Memory of a server process, from /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub pid: u32,
    pub rss_kib: u64,
    /// Anonymous memory: RSS minus file-backed pages (LMDB's map).
    pub anon_kib: u64,
}

pub fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(Memory {
        pid,
        rss_kib: field("VmRSS:")?,
        anon_kib: field("RssAnon:")?,
    })
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub cluster: String,
    pub measures: Vec<Measure>,
    pub memory: Vec<Memory>,
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn payload(size: usize, oid: Oid, round: usize) -> Bytes {
    let mut data = format!("{oid} {round} ").into_bytes();
    data.resize(size.max(data.len()), b'x');
    Bytes::from(data)
}

/// Runs the workloads against the cluster; `progress` gets a line as each
/// starts.
pub fn run(
    cluster: &str,
    masters: &[SocketAddr],
    options: &BenchOptions,
    progress: &mut dyn Write,
) -> BenchResult<Report> {
    let mut report = Report {
        cluster: cluster.to_string(),
        measures: Vec::new(),
        memory: Vec::new(),
    };
    let wants = |w| options.workloads.contains(&w);
    // Objects the load workloads read: those the commit workload wrote,
    // or a set written for them.
    let mut written: Vec<Oid> = Vec::new();
    for &workload in &Workload::ALL {
        if !wants(workload) {
            continue;
        }
        let _ = writeln!(progress, "bench: {}...", workload.name());
        let measure = match workload {
            Workload::Rtt => round_trips(options.round_trips)?,
            Workload::Commit => {
                let mut client = NeoClient::connect(cluster, masters)?;
                let (measure, oids) = commit(&mut client, options, 0)?;
                written = oids;
                measure
            }
            Workload::Cold | Workload::Hot | Workload::ClientsLoad => {
                if written.is_empty() {
                    let mut client = NeoClient::connect(cluster, masters)?;
                    written = commit(&mut client, options, 0)?.1;
                }
                match workload {
                    Workload::Cold => {
                        let mut client = NeoClient::connect(cluster, masters)?;
                        loads(&mut client, &written, Workload::Cold, options.progress)?
                    }
                    Workload::Hot => {
                        let mut client = NeoClient::connect(cluster, masters)?;
                        loads(&mut client, &written, Workload::Cold, false)?;
                        loads(&mut client, &written, Workload::Hot, options.progress)?
                    }
                    _ => concurrent(cluster, masters, options, workload, |client, index| {
                        let progress = options.progress && index == 0;
                        loads(client, &written, Workload::ClientsLoad, progress)
                    })?,
                }
            }
            Workload::ClientsCommit => {
                concurrent(cluster, masters, options, workload, |client, index| {
                    commit(client, options, index).map(|(measure, _)| measure)
                })?
            }
            Workload::Conflicts => conflicts(cluster, masters, options)?,
        };
        report.measures.push(measure);
    }
    report.memory = options
        .pids
        .iter()
        .filter_map(|&pid| memory_of(pid))
        .collect();
    Ok(report)
}

/// The loopback round trip: 64 bytes to an echo thread and back.
fn round_trips(count: usize) -> BenchResult<Measure> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            if stream.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            stream.write_all(&buf)?;
        }
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let sent = Instant::now();
        stream.write_all(&buf)?;
        stream.read_exact(&mut buf)?;
        latencies.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    drop(stream);
    let _ = echo.join();
    Ok(Measure::new(Workload::Rtt, elapsed, latencies))
}

/// How often a long workload reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Progress lines on stderr for a long workload (`bench: cold 4000/100000`),
/// at most every `every`.
struct Ticker {
    enabled: bool,
    name: &'static str,
    total: usize,
    every: Duration,
    last: Instant,
}

impl Ticker {
    fn new(enabled: bool, workload: Workload, total: usize) -> Ticker {
        Ticker {
            enabled,
            name: workload.name(),
            total,
            every: PROGRESS_EVERY,
            last: Instant::now(),
        }
    }

    /// The line to report after `done` operations, if one is due.
    fn line(&mut self, done: usize) -> Option<String> {
        if !self.enabled || self.last.elapsed() < self.every {
            return None;
        }
        self.last = Instant::now();
        Some(format!("bench: {} {done}/{}", self.name, self.total))
    }

    fn tick(&mut self, done: usize) {
        if let Some(line) = self.line(done) {
            eprintln!("{line}");
        }
    }
}

/// `options.transactions` transactions of `options.objects` new objects.
fn commit(
    client: &mut NeoClient,
    options: &BenchOptions,
    client_index: usize,
) -> BenchResult<(Measure, Vec<Oid>)> {
    let mut oids = Vec::with_capacity(options.transactions * options.objects);
    let mut latencies = Vec::with_capacity(options.transactions);
    // One client of several speaks for all.
    let mut ticker = Ticker::new(
        options.progress && client_index == 0,
        Workload::Commit,
        options.transactions,
    );
    let started = Instant::now();
    for t in 0..options.transactions {
        ticker.tick(t);
        let begun = Instant::now();
        let mut txn = client.begin("bench", &format!("client {client_index} transaction {t}"))?;
        for _ in 0..options.objects {
            let oid = client.new_oid()?;
            client.store(&mut txn, oid, None, payload(options.size, oid, 0))?;
            oids.push(oid);
        }
        client.commit(txn)?;
        latencies.push(begun.elapsed());
    }
    let mut measure = Measure::new(Workload::Commit, started.elapsed(), latencies);
    measure.objects = oids.len();
    Ok((measure, oids))
}

fn loads(
    client: &mut NeoClient,
    oids: &[Oid],
    workload: Workload,
    progress: bool,
) -> BenchResult<Measure> {
    let mut latencies = Vec::with_capacity(oids.len());
    let mut ticker = Ticker::new(progress, workload, oids.len());
    let started = Instant::now();
    for (i, &oid) in oids.iter().enumerate() {
        ticker.tick(i);
        let begun = Instant::now();
        client.load(oid)?;
        latencies.push(begun.elapsed());
    }
    let mut measure = Measure::new(workload, started.elapsed(), latencies);
    measure.objects = oids.len();
    Ok(measure)
}

/// `options.clients` clients, each on its own thread and connection,
/// start `work` together; their latencies are merged and the elapsed time
/// is the longest client's.
fn concurrent(
    cluster: &str,
    masters: &[SocketAddr],
    options: &BenchOptions,
    workload: Workload,
    work: impl Fn(&mut NeoClient, usize) -> BenchResult<Measure> + Sync,
) -> BenchResult<Measure> {
    let barrier = Barrier::new(options.clients);
    let results: Vec<BenchResult<(Measure, Duration)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.clients)
            .map(|index| {
                let barrier = &barrier;
                let work = &work;
                scope.spawn(move || -> BenchResult<(Measure, Duration)> {
                    let client = NeoClient::connect(cluster, masters);
                    // Every thread reaches the barrier, connected or not:
                    // one that failed must not leave the others waiting.
                    barrier.wait();
                    let mut client = client?;
                    let started = Instant::now();
                    let measure = work(&mut client, index)?;
                    Ok((measure, started.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    });
    let mut latencies = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut objects = 0;
    for result in results {
        let (measure, took) = result?;
        elapsed = elapsed.max(took);
        objects += measure.objects;
        latencies.extend(measure.latencies);
    }
    let mut measure = Measure::new(workload, elapsed, latencies);
    measure.objects = objects;
    Ok(measure)
}

fn counter(data: &[u8]) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Every client increments one of a few shared counters per transaction,
/// resolving conflicts by adding its increment to what was committed; at
/// the end the counters must add up to the transactions committed.
fn conflicts(
    cluster: &str,
    masters: &[SocketAddr],
    options: &BenchOptions,
) -> BenchResult<Measure> {
    let mut setup = NeoClient::connect(cluster, masters)?;
    let mut txn = setup.begin("bench", "counters")?;
    let mut counters = Vec::new();
    for _ in 0..options.hot_objects.max(1) {
        let oid = setup.new_oid()?;
        setup.store(&mut txn, oid, None, Bytes::from_static(b"0"))?;
        counters.push(oid);
    }
    setup.commit(txn)?;
    let met = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let mut measure = concurrent(
        cluster,
        masters,
        options,
        Workload::Conflicts,
        |client, index| {
            let mut latencies = Vec::with_capacity(options.transactions);
            let started = Instant::now();
            for t in 0..options.transactions {
                let oid = counters[(index + t) % counters.len()];
                let begun = Instant::now();
                let (value, serial) = client.load(oid)?;
                let mut txn = client.begin("bench", "increment")?;
                client.store(
                    &mut txn,
                    oid,
                    Some(serial),
                    Bytes::from((counter(&value) + 1).to_string()),
                )?;
                let result = client.commit_resolving(txn, |_, committed| {
                    met.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Ours was the base + 1: add 1 to what is committed.
                    Some(Bytes::from((counter(committed) + 1).to_string()))
                });
                match result {
                    Ok(_) => latencies.push(begun.elapsed()),
                    Err(Error::Conflict(_)) => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            let mut measure = Measure::new(Workload::Conflicts, started.elapsed(), latencies);
            measure.objects = measure.ops;
            Ok(measure)
        },
    )?;
    measure.conflicts = met.into_inner();
    measure.errors = failed.into_inner();
    // The counters add up to the increments that committed.
    let mut check = NeoClient::connect(cluster, masters)?;
    let total: u64 = counters
        .iter()
        .map(|&oid| check.load(oid).map(|(data, _)| counter(&data)))
        .sum::<Result<u64, _>>()?;
    if total != measure.ops as u64 {
        return Err(format!(
            "the counters add up to {total}, {} increments committed: lost or double updates",
            measure.ops
        )
        .into());
    }
    Ok(measure)
}

/// The human table.
pub fn table(report: &Report, options: &BenchOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {:?}: {} transactions × {} objects × {} bytes, {} concurrent clients",
        report.cluster, options.transactions, options.objects, options.size, options.clients
    );
    let _ = writeln!(
        out,
        "{:<15} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>7}  per",
        "workload", "ops", "ops/s", "objects/s", "p50 µs", "p99 µs", "max µs", "errors"
    );
    for m in &report.measures {
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>12.0} {:>10.0} {:>10.1} {:>10.1} {:>10.1} {:>7}  {}{}",
            m.workload.name(),
            m.ops,
            m.per_second(),
            m.objects_per_second(),
            m.percentile_us(0.5),
            m.percentile_us(0.99),
            m.max_us(),
            m.errors,
            m.workload.unit(),
            if m.conflicts > 0 {
                format!(" ({} conflicts resolved)", m.conflicts)
            } else {
                String::new()
            }
        );
    }
    for memory in &report.memory {
        let _ = writeln!(
            out,
            "process {}: RSS {} KiB, anonymous {} KiB",
            memory.pid, memory.rss_kib, memory.anon_kib
        );
    }
    out
}

/// Writes `items` as a JSON array, each by `item`.
fn json_array<T>(out: &mut String, items: &[T], item: impl Fn(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, x);
    }
    out.push(']');
}

/// The JSON form (one object; no float is NaN).
pub fn json(report: &Report) -> String {
    let mut out = format!("{{\"cluster\":{:?},\"results\":", report.cluster);
    json_array(&mut out, &report.measures, |out, m| {
        let _ = write!(
            out,
            "{{\"workload\":\"{}\",\"ops\":{},\"objects\":{},\"seconds\":{:.6},\"ops_per_s\":{:.1},\"objects_per_s\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"errors\":{},\"conflicts\":{}}}",
            m.workload.name(),
            m.ops,
            m.objects,
            m.elapsed.as_secs_f64(),
            m.per_second(),
            m.objects_per_second(),
            m.percentile_us(0.5),
            m.percentile_us(0.99),
            m.max_us(),
            m.errors,
            m.conflicts
        );
    });
    out.push_str(",\"memory\":");
    json_array(&mut out, &report.memory, |out, memory| {
        let _ = write!(
            out,
            "{{\"pid\":{},\"rss_kib\":{},\"anon_kib\":{}}}",
            memory.pid, memory.rss_kib, memory.anon_kib
        );
    });
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_sorted_latencies() {
        let latencies: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let m = Measure::new(Workload::Cold, Duration::from_millis(10), latencies);
        assert_eq!(m.ops, 100);
        assert_eq!(m.percentile_us(0.5), 51.0);
        assert_eq!(m.percentile_us(0.99), 100.0);
        assert_eq!(m.max_us(), 100.0);
        assert_eq!(m.per_second(), 10_000.0);
    }

    #[test]
    fn json_lists_every_measure_and_process() {
        let measure = |workload| {
            let mut m = Measure::new(
                workload,
                Duration::from_secs(1),
                vec![Duration::from_micros(5)],
            );
            m.objects = 10;
            m
        };
        let report = Report {
            cluster: "c".into(),
            measures: vec![measure(Workload::Commit), measure(Workload::Cold)],
            memory: vec![Memory {
                pid: 7,
                rss_kib: 100,
                anon_kib: 40,
            }],
        };
        assert_eq!(
            json(&report),
            "{\"cluster\":\"c\",\"results\":[\
             {\"workload\":\"commit\",\"ops\":1,\"objects\":10,\"seconds\":1.000000,\"ops_per_s\":1.0,\"objects_per_s\":10.0,\"p50_us\":5.0,\"p99_us\":5.0,\"max_us\":5.0,\"errors\":0,\"conflicts\":0},\
             {\"workload\":\"cold\",\"ops\":1,\"objects\":10,\"seconds\":1.000000,\"ops_per_s\":1.0,\"objects_per_s\":10.0,\"p50_us\":5.0,\"p99_us\":5.0,\"max_us\":5.0,\"errors\":0,\"conflicts\":0}],\
             \"memory\":[{\"pid\":7,\"rss_kib\":100,\"anon_kib\":40}]}"
        );
    }

    #[test]
    fn progress_lines_come_when_due_and_asked_for() {
        let mut ticker = Ticker::new(true, Workload::Cold, 100);
        assert_eq!(ticker.line(1), None, "not due yet");
        ticker.every = Duration::ZERO;
        assert_eq!(ticker.line(40).as_deref(), Some("bench: cold 40/100"));
        let mut quiet = Ticker::new(false, Workload::Cold, 100);
        quiet.every = Duration::ZERO;
        assert_eq!(quiet.line(40), None);
    }

    #[test]
    fn workloads_parse_by_name() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        assert!("nope"
            .parse::<Workload>()
            .unwrap_err()
            .contains("clients-commit"));
    }

    #[test]
    fn the_round_trip_probe_measures_every_round_trip() {
        let m = round_trips(50).unwrap();
        assert_eq!(m.ops, 50);
        assert!(m.percentile_us(0.5) > 0.0);
    }

    #[test]
    fn this_process_memory_is_read_from_proc() {
        let memory = memory_of(std::process::id()).unwrap();
        assert!(memory.rss_kib > 0 && memory.anon_kib <= memory.rss_kib);
    }
}
