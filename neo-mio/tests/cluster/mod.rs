//! Helpers of the tests that run real `neo` processes: a cluster of
//! masters, storages and an admin on loopback ports in a temporary
//! directory, each process SIGKILLed when its guard drops. A test file
//! using it declares `mod common;` too.
#![allow(dead_code)] // each test file uses its own subset

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use crate::common::TempDir;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use neo_mio::client::{Error, NeoClient};
use neo_proto::{Oid, Tid};

pub(crate) const NEO: &str = env!("CARGO_BIN_EXE_neo");

/// A free loopback port (bound then released: nothing else on this
/// machine races for ports in the ephemeral range this test uses).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node process, SIGKILLed when dropped.
pub(crate) struct Node {
    pub name: String,
    pub args: Vec<String>,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Node {
    pub(crate) fn start(name: &str, dir: &Path, args: &[String]) -> Node {
        let mut node = Node {
            name: name.to_string(),
            args: args.to_vec(),
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        node.restart();
        node
    }

    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(NEO)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// Whether the process runs (a zombie does not).
    pub(crate) fn is_running(&self) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()));
        stat.is_ok_and(|stat| {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            !matches!(state, Some(Some('Z' | 'X')) | None)
        })
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) struct Cluster {
    pub name: String,
    pub dir: TempDir,
    pub masters: Vec<Node>,
    pub master_addrs: Vec<SocketAddr>,
    pub storages: Vec<Node>,
    pub admin: Node,
    pub admin_addr: SocketAddr,
}

/// How a test cluster leaves RECOVERING.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Start {
    /// The masters start it once every storage is there (`-A`).
    Auto,
    /// The operator does, with `neo ctl start`.
    Ctl,
}

impl Cluster {
    /// `masters` masters, `storages` storages holding `replicas` + 1
    /// copies of 6 partitions, an admin; returns once the cluster was
    /// started as `start` says (clients wait for it to be RUNNING).
    pub(crate) fn start(
        name: &str,
        masters: usize,
        storages: usize,
        replicas: u32,
        start: Start,
    ) -> Cluster {
        let dir = TempDir::new(name);
        std::fs::create_dir_all(dir.path()).unwrap();
        let master_addrs: Vec<SocketAddr> = (0..masters)
            .map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap())
            .collect();
        let masters_option = master_addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let common = |extra: &[String]| {
            let mut args = vec![
                "-c".to_string(),
                name.to_string(),
                "-m".to_string(),
                masters_option.clone(),
            ];
            args.extend_from_slice(extra);
            args
        };
        let masters = master_addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let mut args = vec!["master".to_string()];
                args.extend(common(&[
                    "-b".into(),
                    addr.to_string(),
                    "-p".into(),
                    "6".into(),
                    "-r".into(),
                    replicas.to_string(),
                ]));
                if start == Start::Auto {
                    args.extend(["-A".to_string(), storages.to_string()]);
                }
                Node::start(&format!("master{i}"), dir.path(), &args)
            })
            .collect();
        let storages = (0..storages)
            .map(|i| {
                let mut args = vec!["storage".to_string()];
                args.extend(common(&[
                    "-b".into(),
                    "127.0.0.1".into(),
                    "-d".into(),
                    dir.path().join(format!("storage{i}")).display().to_string(),
                ]));
                Node::start(&format!("storage{i}"), dir.path(), &args)
            })
            .collect();
        let admin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut args = vec!["admin".to_string()];
        args.extend(common(&["-b".into(), admin_addr.to_string()]));
        let admin = Node::start("admin", dir.path(), &args);
        let cluster = Cluster {
            name: name.to_string(),
            dir,
            masters,
            master_addrs,
            storages,
            admin,
            admin_addr,
        };
        if start == Start::Ctl {
            // Starting before every storage registered would build the
            // table without the missing ones.
            cluster.wait_for("every storage PENDING", Duration::from_secs(20), || {
                let nodes = cluster.try_ctl(&["print", "node", "storage"])?;
                (nodes.matches("| PENDING |").count() == cluster.storages.len()).then_some(())
            });
            // The master refuses to leave recovery while a storage it
            // just accepted has not answered it yet ("is entering
            // cluster"), as NEO/py does: an operator tries again.
            let output = cluster.wait_for(
                "the master to accept start",
                Duration::from_secs(20),
                || {
                    let output = cluster.run_ctl(&["--wait=20", "start"]);
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    let entering = !output.status.success() && stderr.contains("entering cluster");
                    (!entering).then_some(output)
                },
            );
            let progress = String::from_utf8(output.stderr).unwrap();
            assert!(
                output.status.success(),
                "neo ctl start: {progress}\n{}",
                cluster.logs()
            );
            let out = String::from_utf8(output.stdout).unwrap();
            assert_eq!(out, "Cluster state changed\n");
            assert!(
                progress.contains("done in ") && progress.contains("cluster RUNNING"),
                "{progress}"
            );
        }
        cluster
    }

    /// Runs `neo ctl -a ADMIN words…` to its end.
    pub(crate) fn run_ctl(&self, words: &[&str]) -> std::process::Output {
        Command::new(NEO)
            .args(["ctl", "-a", &self.admin_addr.to_string()])
            .args(words)
            .output()
            .unwrap()
    }

    /// `neo ctl -a ADMIN words…`: its output if it succeeded.
    pub(crate) fn try_ctl(&self, words: &[&str]) -> Option<String> {
        let output = self.run_ctl(words);
        output
            .status
            .success()
            .then(|| String::from_utf8(output.stdout).unwrap())
    }

    /// Polls `probe` every 50 ms until it returns something.
    pub(crate) fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} after {timeout:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Which of `masters` the admin names primary (`neo ctl print primary`,
    /// then its address in `print node master`).
    pub(crate) fn primary(&self) -> usize {
        self.wait_for("primary master", Duration::from_secs(10), || {
            let nid = self.try_ctl(&["print", "primary"])?;
            let nodes = self.try_ctl(&["print", "node", "master"])?;
            let line = nodes
                .lines()
                .find(|l| l.starts_with(&format!("{} |", nid.trim())))?;
            let addr: SocketAddr = line.split('|').nth(2)?.trim().parse().ok()?;
            self.master_addrs.iter().position(|&a| a == addr)
        })
    }

    pub(crate) fn client(&self, timeout: Duration) -> NeoClient {
        let config = neo_core::client::ClientConfig::new(
            self.name.clone(),
            self.master_addrs
                .iter()
                .map(|&a| neo_mio::runtime::address_of(a))
                .collect(),
        );
        NeoClient::with_config_and_timeout(config, timeout)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", self.name, self.logs()))
    }

    /// Every node's log, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut all = String::new();
        for node in self
            .masters
            .iter()
            .chain(&self.storages)
            .chain([&self.admin])
        {
            all.push_str(&format!("----- {}\n{}", node.name, node.log_text()));
        }
        all
    }

    /// Waits until `neo ctl print pt` shows every cell UP_TO_DATE;
    /// returns how many cells there are.
    pub(crate) fn wait_all_up_to_date(&self, timeout: Duration) -> usize {
        let mut last = String::new();
        let found = self.wait_for("table all UP_TO_DATE", timeout, || {
            // Rows 0 to 5 of the 6: one line per partition, one
            // "NID - STATE" per cell.
            last = self.try_ctl(&["print", "pt", "0", "6"])?;
            let cells: Vec<&str> = last
                .lines()
                .skip(1)
                .flat_map(|row| row.split('|').skip(1))
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .collect();
            let all = cells.iter().all(|c| c.ends_with(" - UP_TO_DATE"));
            (all && !cells.is_empty()).then_some(cells.len())
        });
        eprintln!("{last}");
        found
    }
}

/// Commits one new object; returns it with its TID.
pub(crate) fn commit_one(client: &mut NeoClient, value: &str) -> Result<(Oid, Tid), Error> {
    let oid = client.new_oid()?;
    let mut txn = client.begin("test", value)?;
    client.store(&mut txn, oid, None, Bytes::from(value.to_string()))?;
    Ok((oid, client.commit(txn)?))
}

pub(crate) fn check_all(client: &mut NeoClient, committed: &[(Oid, Tid, String)]) {
    for (oid, tid, value) in committed {
        let (data, serial) = client
            .load(*oid)
            .unwrap_or_else(|e| panic!("{oid} committed at {tid}: {e}"));
        assert_eq!((&data[..], serial), (value.as_bytes(), *tid), "{oid}");
    }
}
