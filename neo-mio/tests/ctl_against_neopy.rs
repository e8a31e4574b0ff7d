//! `neo ctl` and NEO/py's `neoctl` side by side against a NEO/py cluster:
//! the same commands must print the same bytes.
//!
//! Runs only when `NEOPPOD_SRC` names a NEO/py source tree; otherwise it
//! says so and passes. `NEOPPOD_PYTHON` is the interpreter to run NEO/py
//! with (default `python3`); it needs msgpack, six and ZODB (a client
//! writes a few transactions so that `print ids` shows real ids).
//!
//! The cluster (1 master, 1 admin, 2 SQLite storages, 12 partitions, 1
//! replica) listens on free ports of 127.0.0.59 and lives in a temporary
//! directory; a guard kills its processes and removes the directory however
//! the test ends. Every wait is bounded.

use std::env;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use neo_mio::cli::ctl::{self, CtlError};

const IP: &str = "127.0.0.59";
const CLUSTER: &str = "ctl_against_neopy";

/// The NEO/py processes of the test and their directory, which dropping
/// kills and removes.
struct Cluster {
    src: PathBuf,
    python: String,
    dir: PathBuf,
    master: String,
    admin: SocketAddr,
    /// Each node's name (its output is `<name>.out`) and process.
    children: Vec<(String, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((IP, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn python(&self) -> Command {
        let mut command = Command::new(&self.python);
        command.env("PYTHONPATH", &self.src).current_dir(&self.dir);
        command
    }

    /// Starts a NEO/py node; its output goes to `<name>.out`.
    fn spawn(&mut self, name: &str, script: &str, args: &[&str]) {
        let out = File::create(self.dir.join(format!("{name}.out"))).unwrap();
        let child = self
            .python()
            .args(["-m", &format!("neo.scripts.{script}"), "-c", CLUSTER])
            .args(["-m", &self.master])
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python));
        self.children.push((name.to_owned(), child));
    }

    /// Runs a Python command to its end, within `limit`: (status, stdout,
    /// stderr).
    fn run_python(&self, args: &[&str], limit: Duration) -> (i32, String, String) {
        let stdout = self.dir.join("run.stdout");
        let stderr = self.dir.join("run.stderr");
        let mut child = self
            .python()
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} still running after {limit:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        (
            status.code().unwrap_or(-1),
            fs::read_to_string(stdout).unwrap(),
            fs::read_to_string(stderr).unwrap(),
        )
    }

    /// NEO/py's neoctl: (status, stdout, last line of stderr).
    fn neoctl(&self, words: &[&str]) -> (i32, String, String) {
        let admin = self.admin.to_string();
        let mut args = vec!["-m", "neo.scripts.neoctl", "-a", &admin];
        args.extend(words);
        let (status, stdout, stderr) = self.run_python(&args, Duration::from_secs(30));
        let last_line = stderr.lines().last().unwrap_or("").to_owned();
        (status, stdout, last_line)
    }

    /// Ours, in the same form (neoctl prints errors as one line).
    fn ctl(&self, words: &[&str]) -> (i32, String, String) {
        match self.ctl_result(words) {
            Ok(out) => (0, out, String::new()),
            Err(error) => (1, String::new(), error.to_string()),
        }
    }

    fn ctl_result(&self, words: &[&str]) -> Result<String, CtlError> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut out = Vec::new();
        ctl::run(self.admin, &words, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// Polls our `ctl` until `done` accepts its result, for at most
    /// `limit`; a node that dies fails the test at once.
    fn wait_for(
        &mut self,
        words: &[&str],
        limit: Duration,
        done: impl Fn(&Result<String, CtlError>) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let result = self.ctl_result(words);
            if done(&result) {
                return;
            }
            let dead = self.children.iter_mut().find_map(|(name, child)| {
                let status = child.try_wait().unwrap()?;
                Some(format!("{name} exited ({status})"))
            });
            if let Some(dead) = dead {
                panic!("{dead}\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "{words:?}: still {result:?} after {limit:?}\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of each node's output, for failure messages: the directory
    /// is gone once the guard has run.
    fn logs(&self) -> String {
        let mut logs = String::new();
        for entry in fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "out") {
                let text = fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(10)..].join("\n");
                logs += &format!("--- {}\n{tail}\n", path.display());
            }
        }
        logs
    }

    /// Both tools print the same, on the same stream, with the same status.
    /// A cluster may change between the two runs (a storage finishing its
    /// start-up): a difference is retried a few times before it fails.
    fn same(&self, words: &[&str]) {
        let mut attempts = 0;
        loop {
            let theirs = self.neoctl(words);
            let ours = self.ctl(words);
            if theirs == ours {
                return;
            }
            attempts += 1;
            assert!(
                attempts < 3,
                "{words:?}:\n neoctl: {theirs:?}\n ours:   {ours:?}"
            );
            thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A ZODB client committing a few transactions, so that the last OID and
/// TID are not zero.
const WRITE_TRANSACTIONS: &str = "\
import sys, transaction, ZODB
from persistent.mapping import PersistentMapping
from neo.client.Storage import Storage
db = ZODB.DB(Storage(master_nodes=sys.argv[1], name=sys.argv[2]))
root = db.open().root()
for i in range(3):
    root[i] = PersistentMapping()
    transaction.commit()
db.close()
";

#[test]
fn neoctl_and_neo_ctl_print_the_same() {
    let Some(src) = env::var_os("NEOPPOD_SRC") else {
        eprintln!(
            "skipped: set NEOPPOD_SRC to a NEO/py source tree (and NEOPPOD_PYTHON to a \
             Python with msgpack, six and ZODB) to compare with NEO/py's neoctl"
        );
        return;
    };
    let src = PathBuf::from(src);
    assert!(
        src.join("neo/scripts/neoctl.py").is_file(),
        "NEOPPOD_SRC={} is not a NEO/py tree",
        src.display()
    );
    let dir = env::temp_dir().join(format!("neo-ctl-against-neopy-{}", std::process::id()));
    // A directory left by a killed run of a process with our pid would hold
    // databases the storages would reopen.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let master = format!("{IP}:{}", free_port());
    let admin: SocketAddr = format!("{IP}:{}", free_port()).parse().unwrap();
    let mut cluster = Cluster {
        src,
        python: env::var("NEOPPOD_PYTHON").unwrap_or_else(|_| "python3".into()),
        dir,
        master: master.clone(),
        admin,
        children: Vec::new(),
    };
    cluster.spawn(
        "master",
        "neomaster",
        &["-b", &master, "-p", "12", "-r", "1"],
    );
    cluster.spawn("admin", "neoadmin", &["-b", &admin.to_string()]);
    for name in ["s1", "s2"] {
        let bind = format!("{IP}:{}", free_port());
        let db = cluster.dir.join(format!("{name}.sqlite"));
        let db = db.to_str().unwrap().to_owned();
        cluster.spawn(
            name,
            "neostorage",
            &["-b", &bind, "-a", "SQLite", "-d", &db],
        );
    }
    let minute = Duration::from_secs(60);
    cluster.wait_for(
        &["print", "node", "storage"],
        minute,
        |result| matches!(result, Ok(out) if out.matches("PENDING").count() == 2),
    );

    // Recovering, before any partition table.
    for words in [
        &["print", "cluster"][..],
        &["print", "node"],
        &["print", "node", "storage"],
        &["print", "node", "client"],
        &["print", "pt"],
        &["print", "pt", "0", "3"],
        &["print", "ids"],
        &["print", "primary"],
        &["print", "summary"],
        // Refused by the master (DENIED): same message, status 1.
        &["tweak", "-n"],
        &["set", "cluster", "RUNNING"],
    ] {
        cluster.same(words);
    }

    assert_eq!(
        cluster.ctl_result(&["start"]).unwrap(),
        "Cluster state changed\n"
    );
    cluster.wait_for(
        &["print", "cluster"],
        minute,
        |result| matches!(result, Ok(out) if out == "RUNNING\n"),
    );
    let (status, _, stderr) =
        cluster.run_python(&["-c", WRITE_TRANSACTIONS, &master, CLUSTER], minute);
    assert_eq!(status, 0, "writing transactions failed: {stderr}");

    // Running, with data.
    for words in [
        &["print", "cluster"][..],
        &["print", "node"],
        &["print", "node", "master"],
        &["print", "pt"],
        &["print", "pt", "0", "3"],
        &["print", "pt", "10", "0"],
        &["print", "pt", "5", "3"],
        &["print", "ids"],
        &["print", "summary"],
        &["tweak", "-n"],
        // Refused (DENIED).
        &["kill", "M1"],
        // Changes that change nothing: no pending node to add, nothing to
        // compare, logs flushed.
        &["add", "all"],
        &["check"],
        &["flush_log"],
    ] {
        cluster.same(words);
    }

    // Without a master, the admin is not ready: NOT_READY for both.
    let (_, mut master_node) = cluster.children.remove(0);
    master_node.kill().unwrap();
    master_node.wait().unwrap();
    cluster.wait_for(&["print", "cluster"], minute, |result| {
        matches!(result, Err(CtlError::NotReady(_)))
    });
    cluster.same(&["print", "cluster"]);
    cluster.same(&["print", "node"]);
}
