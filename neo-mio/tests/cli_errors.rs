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
