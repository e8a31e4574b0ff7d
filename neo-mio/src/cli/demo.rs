//! `neo demo`: what a ZODB application does, against a cluster — commits
//! objects, reads them back from a fresh client, meets a conflict and
//! resolves it, reads history — printing each step.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use neo_proto::{Oid, Tid};

use crate::client::{Error, NeoClient};

/// The demo's size.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub transactions: usize,
    pub objects_per_transaction: usize,
    pub object_size: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            transactions: 100,
            objects_per_transaction: 10,
            object_size: 100,
        }
    }
}

fn counter(data: &[u8]) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs the workload through clients of the cluster `cluster`.
pub fn run(
    cluster: &str,
    masters: &[std::net::SocketAddr],
    options: &DemoOptions,
    out: &mut dyn Write,
) -> DemoResult<()> {
    let mut writer = NeoClient::connect(cluster, masters)?;
    writeln!(out, "connected to cluster {cluster:?} through {masters:?}")?;
    let objects = commit_objects(&mut writer, options, out)?;
    let mut reader = NeoClient::connect(cluster, masters)?;
    read_back(&mut reader, &objects, out)?;
    let counter_oid = resolve_counter_conflict(&mut writer, &mut reader, out)?;
    print_history(&mut writer, counter_oid, out)
}

/// Step 1, commits: each transaction stores new objects of the given size.
fn commit_objects(
    writer: &mut NeoClient,
    options: &DemoOptions,
    out: &mut dyn Write,
) -> DemoResult<Vec<(Oid, Tid, Bytes)>> {
    let started = Instant::now();
    let mut objects: Vec<(Oid, Tid, Bytes)> = Vec::new();
    for t in 0..options.transactions {
        let mut txn = writer.begin("demo", &format!("transaction {t}"))?;
        let mut stored = Vec::new();
        for o in 0..options.objects_per_transaction {
            let oid = writer.new_oid()?;
            let mut data = format!("object {oid} of transaction {t}, #{o} ").into_bytes();
            data.resize(options.object_size.max(data.len()), b'.');
            let data = Bytes::from(data);
            writer.store(&mut txn, oid, None, data.clone())?;
            stored.push((oid, data));
        }
        let tid = writer.commit(txn)?;
        objects.extend(stored.into_iter().map(|(oid, data)| (oid, tid, data)));
    }
    let elapsed = started.elapsed();
    writeln!(
        out,
        "committed {} transactions of {} objects ({} bytes each) in {} ({:.0} transactions/s)",
        options.transactions,
        options.objects_per_transaction,
        options.object_size,
        human(elapsed),
        options.transactions as f64 / elapsed.as_secs_f64()
    )?;
    Ok(objects)
}

/// Step 2: a fresh client reads everything back.
fn read_back(
    reader: &mut NeoClient,
    objects: &[(Oid, Tid, Bytes)],
    out: &mut dyn Write,
) -> DemoResult<()> {
    let started = Instant::now();
    for (oid, tid, data) in objects {
        let (read, serial) = reader.load(*oid)?;
        if (&read, serial) != (data, *tid) {
            return Err(format!("{oid}: read {serial} {read:?}, committed {tid} {data:?}").into());
        }
    }
    let elapsed = started.elapsed();
    writeln!(
        out,
        "a new client loaded all {} objects back, identical, in {} ({:.1} µs per load)",
        objects.len(),
        human(elapsed),
        elapsed.as_secs_f64() * 1e6 / objects.len().max(1) as f64
    )?;
    Ok(())
}

/// Step 3: two clients update the same counter: the second conflicts, then
/// resolves by merging the increments. Returns the counter's oid.
fn resolve_counter_conflict(
    writer: &mut NeoClient,
    reader: &mut NeoClient,
    out: &mut dyn Write,
) -> DemoResult<Oid> {
    let counter_oid = writer.new_oid()?;
    let mut txn = writer.begin("demo", "counter")?;
    writer.store(&mut txn, counter_oid, None, Bytes::from_static(b"0"))?;
    let base = writer.commit(txn)?;
    reader.sync()?;
    let mut txn = writer.begin("demo", "counter += 1")?;
    writer.store(&mut txn, counter_oid, Some(base), Bytes::from_static(b"1"))?;
    writer.commit(txn)?;
    let mut txn = reader.begin("demo", "counter += 10")?;
    reader.store(&mut txn, counter_oid, Some(base), Bytes::from_static(b"10"))?;
    match reader.commit(txn) {
        Err(Error::Conflict(conflict)) => writeln!(
            out,
            "a second client's update of the counter conflicted: it was based on {}, {} committed since",
            conflict.based_on, conflict.committed
        )?,
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }
    let mut txn = reader.begin("demo", "counter += 10, resolved")?;
    reader.store(&mut txn, counter_oid, Some(base), Bytes::from_static(b"10"))?;
    let resolved = reader.commit_resolving(txn, |conflict, committed| {
        // BTrees.Length-style resolution: add our increment to theirs.
        let ours = conflict.data.as_deref().map_or(0, counter);
        Some(Bytes::from((counter(committed) + ours).to_string()))
    })?;
    writer.sync()?;
    let (value, serial) = writer.load(counter_oid)?;
    if &value[..] != b"11" || serial != resolved {
        return Err(format!(
            "the resolved counter reads {:?} at {serial}, expected \"11\" at {resolved}",
            String::from_utf8_lossy(&value)
        )
        .into());
    }
    writeln!(
        out,
        "resolved by merging the increments: the counter reads {} at {serial} (committed as {resolved})",
        String::from_utf8_lossy(&value)
    )?;
    let invalidations = writer.invalidations();
    writeln!(
        out,
        "the first client received {} invalidation(s), the last for {}",
        invalidations.len(),
        invalidations
            .last()
            .map_or("nothing".to_string(), |(tid, _)| tid.to_string())
    )?;
    Ok(counter_oid)
}

/// Step 4: the counter's history, newest first.
fn print_history(writer: &mut NeoClient, counter_oid: Oid, out: &mut dyn Write) -> DemoResult<()> {
    let history = writer.history(counter_oid, 10)?;
    writeln!(out, "history of the counter, newest first:")?;
    for entry in &history {
        writeln!(
            out,
            "  {}  {:>3} bytes  {}",
            entry.serial,
            entry.size,
            String::from_utf8_lossy(&entry.transaction.description)
        )?;
    }
    Ok(())
}

fn human(duration: Duration) -> String {
    if duration < Duration::from_millis(10) {
        format!("{:.0} µs", duration.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", duration.as_secs_f64() * 1e3)
    }
}
