//! Bad configuration gets one clear line and exit status 1, before any
//! node starts.

use std::process::Command;

const NEO: &str = env!("CARGO_BIN_EXE_neo");

fn fails(args: &[&str]) -> String {
    let output = Command::new(NEO).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "neo {args:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn missing_required_options_are_named() {
    assert!(fails(&["master"]).contains("the cluster name is required (-c/--cluster)"));
    assert!(fails(&["storage", "-c", "x"]).contains("the database is required (-d/--database)"));
}

#[test]
fn an_address_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let error = fails(&["master", "-c", "x", "-b", &address]);
    assert!(
        error.contains(&format!("cannot listen on {address}")),
        "{error}"
    );
}

#[test]
fn other_database_adapters_are_refused() {
    let error = fails(&["storage", "-c", "x", "-d", "/nonexistent", "-a", "MySQL"]);
    assert!(
        error.contains("adapter \"MySQL\" is not available"),
        "{error}"
    );
}

#[test]
fn a_configuration_file_section_must_exist() {
    let path = std::env::temp_dir().join(format!("neo-cli-errors-{}.conf", std::process::id()));
    std::fs::write(&path, "[master]\ncluster = x\n").unwrap();
    let error = fails(&["admin", "-f", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(error.contains("no section [admin]"), "{error}");
}

#[test]
fn a_mysql_database_of_a_neo_py_configuration_is_refused() {
    let error = fails(&[
        "storage",
        "-c",
        "x",
        "-m",
        "127.0.0.1:1",
        "-d",
        "neo:neo@neo1",
    ]);
    assert!(error.contains("looks like a MySQL connection"), "{error}");
}

#[test]
fn configuration_keys_neo_py_acts_on_are_never_silently_ignored() {
    let path = std::env::temp_dir().join(format!("neo-cli-keys-{}.conf", std::process::id()));
    let cases = [
        (
            "master",
            "ca = /etc/neo/ca.crt",
            "\"ca\" of master: TLS is not implemented yet",
        ),
        (
            "master",
            "upstream-cluster = up",
            "\"upstream_cluster\" of master",
        ),
        ("storage", "dedup = true", "\"dedup\" of storage"),
        ("storage", "reset = true", "use --reset on the command line"),
        (
            "storage",
            "dedup = maybe",
            "dedup: \"maybe\" is not yes or no",
        ),
        ("admin", "smtp = mail:25", "\"smtp\" of admin"),
    ];
    for (program, line, expected) in cases {
        let text = format!(
            "[DEFAULT]\ncluster = x\nmasters = 127.0.0.1:1\n[{program}]\ndatabase = /nonexistent\n{line}\n"
        );
        std::fs::write(&path, text).unwrap();
        let error = fails(&[program, "-f", path.to_str().unwrap()]);
        assert!(error.contains(expected), "{program} {line}: {error}");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_unusable_database_directory_is_reported() {
    let file = std::env::temp_dir().join(format!("neo-cli-errors-{}.file", std::process::id()));
    std::fs::write(&file, "not a directory").unwrap();
    let database = file.join("db");
    let error = fails(&["storage", "-c", "x", "-d", database.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert!(
        error.contains(&format!("cannot open the database {}", database.display())),
        "{error}"
    );
}

/// Starts a storage of `cluster` on `database` until it listens, then
/// kills it.
fn run_storage_once(cluster: &str, database: &std::path::Path) {
    let mut child = start_storage(cluster, database);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Starts a storage of `cluster` on `database`; returns once it listens.
fn start_storage(cluster: &str, database: &std::path::Path) -> std::process::Child {
    let log = database.with_extension("log");
    let _ = std::fs::remove_file(&log);
    let mut child = Command::new(NEO)
        .args(["storage", "-c", cluster, "-m", "127.0.0.1:1", "-d"])
        .arg(database)
        .arg("-l")
        .arg(&log)
        .spawn()
        .unwrap();
    let mut listening = false;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("listening on") {
            listening = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !listening {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(
        listening,
        "the storage did not start: {:?}",
        std::fs::read_to_string(&log)
    );
    child
}

#[test]
fn a_second_storage_on_a_database_in_use_is_refused() {
    let dir = std::env::temp_dir().join(format!("neo-cli-errors-{}-inuse", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let database = dir.join("storage");
    std::fs::create_dir_all(&dir).unwrap();
    let mut first = start_storage("used", &database);
    let path = database.to_str().unwrap();
    let error = fails(&["storage", "-c", "used", "-m", "127.0.0.1:1", "-d", path]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(error.contains("store already in use"), "{error}");
    // The lock dies with its process: the database opens again.
    run_storage_once("used", &database);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_database_of_another_cluster_is_refused_until_reset() {
    let dir = std::env::temp_dir().join(format!("neo-cli-errors-{}-db", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let database = dir.join("storage");
    std::fs::create_dir_all(&dir).unwrap();
    run_storage_once("first", &database);
    let path = database.to_str().unwrap();
    let error = fails(&["storage", "-c", "second", "-m", "127.0.0.1:1", "-d", path]);
    assert!(
        error.contains("the database belongs to cluster \"first\", not \"second\""),
        "{error}"
    );
    // --reset empties the database and exits; then it is anyone's.
    let reset = Command::new(NEO)
        .args(["storage", "-c", "second", "-d", path, "--reset"])
        .output()
        .unwrap();
    assert!(reset.status.success(), "{reset:?}");
    run_storage_once("second", &database);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctl_wait_gives_up_at_its_limit_and_says_why() {
    let error = fails(&["ctl", "-a", "127.0.0.1:1", "--wait=0.3"]);
    assert!(
        error.contains("admin node: ERROR: not connected: admin node 127.0.0.1:1"),
        "{error}"
    );
    assert!(
        error
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("still not done after 0.3 s: admin node:")),
        "{error}"
    );
    let error = String::from_utf8(
        Command::new(NEO)
            .args(["ctl", "--wait=0", "print", "node"])
            .output()
            .unwrap()
            .stderr,
    )
    .unwrap();
    assert!(
        error.contains("is not a positive number of seconds"),
        "{error}"
    );
}
