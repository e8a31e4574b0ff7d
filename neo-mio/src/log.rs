//! Process logging: one line per event, `UTC-timestamp LEVEL node: message`,
//! to standard error or to a file (`-l/--logfile`).
//!
//! The level comes from `NEO_LOG` or `RUST_LOG` (`error`, `warn`, `info`,
//! `debug`; default `info`), or `-v` on the command line. Nodes produce
//! their records as [`neo_core::Output::Log`]; the runtime adds its own
//! (connections refused, peers too slow).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub use neo_core::Level;

struct Sink {
    level: Level,
    file: Option<File>,
}

static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();

fn sink() -> &'static Mutex<Sink> {
    SINK.get_or_init(|| {
        Mutex::new(Sink {
            level: level_from_env().unwrap_or(Level::Info),
            file: None,
        })
    })
}

/// The level named by `NEO_LOG` or `RUST_LOG`, if any.
fn level_from_env() -> Option<Level> {
    let value = std::env::var("NEO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()?;
    parse_level(&value)
}

pub fn parse_level(name: &str) -> Option<Level> {
    match name.trim().to_ascii_lowercase().as_str() {
        "error" => Some(Level::Error),
        "warn" | "warning" => Some(Level::Warn),
        "info" => Some(Level::Info),
        "debug" | "trace" => Some(Level::Debug),
        _ => None,
    }
}

/// Sets the most verbose level written.
pub fn set_level(level: Level) {
    sink().lock().unwrap().level = level;
}

pub fn enabled(level: Level) -> bool {
    level <= sink().lock().unwrap().level
}

/// Appends records to `path` instead of standard error.
pub fn to_file(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    sink().lock().unwrap().file = Some(file);
    Ok(())
}

/// Writes one record of node `node`.
pub fn log(level: Level, node: &str, message: &str) {
    let mut sink = sink().lock().unwrap();
    if level > sink.level {
        return;
    }
    let line = format!(
        "{} {:<5} {node}: {message}\n",
        timestamp(SystemTime::now()),
        match level {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    );
    // A log that cannot be written must not stop the node.
    let _ = match &mut sink.file {
        Some(file) => file.write_all(line.as_bytes()),
        None => io::stderr().lock().write_all(line.as_bytes()),
    };
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = neo_proto::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00.000");
        // 2026-11-24 13:05:09.250 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_795_525_509_250);
        assert_eq!(timestamp(t), "2026-11-24 13:05:09.250");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(t), "2000-02-29 00:00:00.000");
    }

    #[test]
    fn levels_are_named_as_rust_loggers_name_them() {
        assert_eq!(parse_level("WARN"), Some(Level::Warn));
        assert_eq!(parse_level("debug"), Some(Level::Debug));
        assert_eq!(parse_level("loud"), None);
    }
}
