//! `neo wire decode` as an operator runs it: the real binary on files and
//! standard input.

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::BytesMut;
use neo_proto::{encode, AnswerObject, Checksum, Oid, Packet, Ping, Tid, HANDSHAKE};

fn capture() -> Vec<u8> {
    let mut out = BytesMut::from(&HANDSHAKE[..]);
    encode(0, &Packet::from(Ping {}), &mut out);
    encode(
        3,
        &AnswerObject {
            oid: Oid(1),
            serial: Tid(0x03f9_29f5_5666_6666),
            next_serial: None,
            compression: Some(0),
            checksum: Checksum::ZERO,
            data: "hello".into(),
            data_serial: None,
        }
        .into(),
        &mut out,
    );
    out.to_vec()
}

fn neo(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_neo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run neo");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn decodes_a_capture_file() {
    let dir = std::env::temp_dir().join(format!("neo-wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("capture.bin");
    std::fs::write(&path, capture()).unwrap();
    let (code, stdout, stderr) = neo(&["wire", "decode", path.to_str().unwrap()], b"");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "0 Ping()\n3 AnswerObject(oid=0000000000000001, serial=03f929f556666666, \
         next_serial=None, compression=0, checksum=0000000000000000000000000000000000000000, \
         data=b\"hello\", data_serial=None)\n"
    );
}

#[test]
fn decodes_hex_from_stdin() {
    let hex: String = capture().iter().map(|b| format!("{b:02x}")).collect();
    let (code, stdout, _) = neo(&["wire", "decode", "--hex"], hex.as_bytes());
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2);
}

#[test]
fn undecodable_stream_prints_what_decoded_then_fails() {
    let mut bytes = capture();
    bytes.extend_from_slice(&[0x93, 0x09, 0x4a, 0x90]);
    let (code, stdout, stderr) = neo(&["wire", "decode"], &bytes);
    assert_eq!(code, 1);
    assert_eq!(stdout.lines().count(), 2);
    assert!(
        stderr.contains("unknown packet code 0x004a"),
        "stderr: {stderr}"
    );
    let (code, _, stderr) = neo(&["wire", "decode"], b"SSH-2.0-OpenSSH");
    assert_eq!(code, 1);
    assert!(stderr.contains("not a NEO stream"), "stderr: {stderr}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let (code, _, stderr) = neo(&["wire", "decode", "/nonexistent/capture"], b"");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot open /nonexistent/capture"),
        "{stderr}"
    );
}
