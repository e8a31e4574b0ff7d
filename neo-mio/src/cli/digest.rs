//! `neo digest`: one SHA-1 over every transaction and object revision of
//! a cluster, read through the client as an application reads them, to
//! tell whether two clusters (or a cluster before and after an operation,
//! or the same cluster read by another client) hold the same data.
//!
//! The digest is over text lines, in TID order:
//!
//! ```text
//! T <tid> <sha1 of user> <sha1 of description> <sha1 of extension>
//! O <oid> <sha1 of the data, or "none">      (the records, by oid)
//! ```
//!
//! with TIDs and OIDs as 16 hex digits. A record's data is what a load at
//! that transaction returns (the data an undo points back to, not the
//! pointer), so a digest depends only on what clients can read. The
//! interoperability tests compute the same lines through NEO/py's client.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;

use neo_proto::Tid;
use sha1::{Digest as _, Sha1};

use crate::client::NeoClient;

/// What `neo digest` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDigest {
    pub transactions: usize,
    pub records: usize,
    pub sha1: String,
}

impl std::fmt::Display for ClusterDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} transactions, {} object records, sha1 {}",
            self.transactions, self.records, self.sha1
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex(&Sha1::digest(bytes))
}

/// Reads every transaction of the cluster through `client`; with
/// `lines`, also writes the digested lines there.
pub fn digest(
    client: &mut NeoClient,
    mut lines: Option<&mut dyn Write>,
) -> Result<ClusterDigest, Box<dyn std::error::Error>> {
    let mut hasher = Sha1::new();
    let mut result = ClusterDigest {
        transactions: 0,
        records: 0,
        sha1: String::new(),
    };
    for mut txn in client.iterate(Tid::ZERO, None)? {
        let info = &txn.info;
        let mut text = format!(
            "T {} {} {} {}\n",
            info.tid,
            sha1_hex(&info.user),
            sha1_hex(&info.description),
            sha1_hex(&info.extension)
        );
        txn.records.sort_by_key(|r| r.oid);
        for record in &txn.records {
            let data = record.data.as_deref().map_or("none".into(), sha1_hex);
            let _ = writeln!(text, "O {} {data}", record.oid);
        }
        hasher.update(text.as_bytes());
        if let Some(out) = lines.as_mut() {
            out.write_all(text.as_bytes())?;
        }
        result.transactions += 1;
        result.records += txn.records.len();
    }
    result.sha1 = hex(&hasher.finalize());
    Ok(result)
}

/// `neo digest -c CLUSTER -m MASTERS`.
pub fn run(
    cluster: &str,
    masters: &[SocketAddr],
    verbose: bool,
    out: &mut dyn Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = NeoClient::connect(cluster, masters)?;
    let result = digest(&mut client, verbose.then_some(&mut *out))?;
    writeln!(out, "{result}")?;
    Ok(())
}
