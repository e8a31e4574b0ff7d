//! Option values shared by the node subcommands: addresses as NEO/py
//! writes them, and `neo.conf` files (INI, NEO/py's `-f/--file` with
//! `-s/--section`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use neo_proto::Address;

/// A configuration error, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Parses `host:port`, `[v6]:port`, or a bare host (port `default_port`).
pub fn parse_address(text: &str, default_port: Option<u16>) -> Result<Address, ConfigError> {
    let text = text.trim();
    let bad = |why: &str| ConfigError(format!("bad address {text:?}: {why}"));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ]"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("expected :port after ]")),
        }
    } else if text.matches(':').count() > 1 {
        // A bare IPv6 address.
        (text, None)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| bad("the port must be a number from 0 to 65535"))?,
        None => default_port.ok_or_else(|| bad("a port is required"))?,
    };
    Ok(Address {
        host: host.to_string().into(),
        port,
    })
}

/// NEO/py's master list: addresses separated by spaces (or newlines, in
/// a configuration file).
pub fn parse_masters(text: &str) -> Result<Vec<Address>, ConfigError> {
    text.split_whitespace()
        .map(|a| parse_address(a, None))
        .collect()
}

/// One section of a `neo.conf` file, `[DEFAULT]` values included, keys
/// with `-` written as `_` (as NEO/py reads them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Section {
    values: BTreeMap<String, String>,
}

impl Section {
    /// The value of option `name` (`--dynamic-master-list` is looked up as
    /// `dynamic_master_list`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(&name.replace('-', "_")).map(String::as_str)
    }

    /// Reads section `name` of the INI file at `path`.
    pub fn load(path: &Path, name: &str) -> Result<Section, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Section::parse(&text, name).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses INI text the way Python's ConfigParser does for NEO's files:
    /// `[section]` headers, `key = value` or `key: value`, `#`/`;` comment
    /// lines, indented continuation lines, `[DEFAULT]` inherited.
    pub fn parse(text: &str, name: &str) -> Result<Section, ConfigError> {
        let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut last_key: Option<String> = None;
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if line.starts_with(char::is_whitespace) {
                let (Some(section), Some(key)) = (&current, &last_key) else {
                    return Err(ConfigError(format!(
                        "line {number}: unexpected indentation"
                    )));
                };
                let value = sections.get_mut(section).unwrap().get_mut(key).unwrap();
                value.push('\n');
                value.push_str(trimmed);
                continue;
            }
            if let Some(header) = trimmed.strip_prefix('[') {
                let header = header
                    .strip_suffix(']')
                    .ok_or_else(|| ConfigError(format!("line {number}: bad section header")))?;
                current = Some(header.trim().to_string());
                sections.entry(header.trim().to_string()).or_default();
                last_key = None;
                continue;
            }
            let Some(section) = &current else {
                return Err(ConfigError(format!(
                    "line {number}: an option before any [section]"
                )));
            };
            let split = trimmed
                .find(['=', ':'])
                .ok_or_else(|| ConfigError(format!("line {number}: expected key = value")))?;
            let key = trimmed[..split].trim().to_lowercase().replace('-', "_");
            let value = trimmed[split + 1..].trim().to_string();
            sections
                .get_mut(section)
                .unwrap()
                .insert(key.clone(), value);
            last_key = Some(key);
        }
        if name != "DEFAULT" && !sections.contains_key(name) {
            return Err(ConfigError(format!("no section [{name}]")));
        }
        let mut values = sections.remove("DEFAULT").unwrap_or_default();
        values.extend(sections.remove(name).unwrap_or_default());
        Ok(Section { values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_neo_py_writes_them() {
        let a = parse_address("127.0.0.1:10000", None).unwrap();
        assert_eq!((&a.host[..], a.port), (&b"127.0.0.1"[..], 10000));
        let a = parse_address("[::1]:2051", None).unwrap();
        assert_eq!((&a.host[..], a.port), (&b"::1"[..], 2051));
        let a = parse_address("::1", Some(0)).unwrap();
        assert_eq!((&a.host[..], a.port), (&b"::1"[..], 0));
        let a = parse_address("localhost", Some(0)).unwrap();
        assert_eq!(a.port, 0);
        assert!(parse_address("127.0.0.1", None).is_err());
        assert!(parse_address("127.0.0.1:99999", None).is_err());
        assert!(parse_address(":10", None).is_err());
        let masters = parse_masters("127.0.0.1:1 127.0.0.2:2\n[::1]:3").unwrap();
        assert_eq!(masters.len(), 3);
    }

    #[test]
    fn sections_inherit_defaults_and_keep_continuation_lines() {
        let text = "\
# a NEO cluster
[DEFAULT]
cluster = test
masters: 127.0.0.1:10000
  127.0.0.1:10001

[master]
bind = 127.0.0.1:10000
partitions = 12

[storage]
; comment
database = /var/lib/neo
dynamic-master-list = /tmp/x
";
        let master = Section::parse(text, "master").unwrap();
        assert_eq!(master.get("cluster"), Some("test"));
        assert_eq!(
            master.get("masters"),
            Some("127.0.0.1:10000\n127.0.0.1:10001")
        );
        assert_eq!(master.get("partitions"), Some("12"));
        assert_eq!(master.get("database"), None);
        let storage = Section::parse(text, "storage").unwrap();
        assert_eq!(storage.get("database"), Some("/var/lib/neo"));
        assert_eq!(storage.get("dynamic-master-list"), Some("/tmp/x"));
        assert!(Section::parse(text, "admin").is_err());
        assert!(Section::parse("key = 1\n", "master").is_err());
    }
}
