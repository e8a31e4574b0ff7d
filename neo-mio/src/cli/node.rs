//! `neo master`, `neo storage`, `neo admin`: NEO/py's `neomaster`,
//! `neostorage` and `neoadmin`, with the same option names, defaults and
//! configuration files, so that an operator only changes the program name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::Args;
use mio::net::TcpListener;
use neo_core::admin::{Admin, AdminConfig};
use neo_core::master::{Master, MasterConfig};
use neo_core::storage::store::Store;
use neo_core::storage::{Storage, StorageConfig};
use neo_core::Level;
use neo_proto::{Address, Nid, NodeType, Partitions};

use super::config::{parse_address, parse_masters, ConfigError, Section};
use crate::runtime::{self, address_of, Exit, Hosted, Runtime};

/// Options every server node takes (NEO/py's "server node" group).
#[derive(Args, Debug, Clone, Default)]
pub struct ServerOptions {
    /// The cluster name (required, here or in the configuration file).
    #[arg(short = 'c', long)]
    pub cluster: Option<String>,
    /// Space-separated list of master node addresses.
    #[arg(short = 'm', long)]
    pub masters: Option<String>,
    /// The local address to bind to (port 0 or none: any free port).
    #[arg(short = 'b', long)]
    pub bind: Option<String>,
    /// A configuration file (INI, as NEO/py's neo.conf).
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// The configuration section to read (default: the program's).
    #[arg(short = 's', long)]
    pub section: Option<String>,
    /// Write the log to this file instead of standard error.
    #[arg(short = 'l', long)]
    pub logfile: Option<PathBuf>,
    /// Log debugging information too.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct MasterOptions {
    #[command(flatten)]
    pub server: ServerOptions,
    /// Create a new cluster automatically once this many storage nodes
    /// wait (to avoid unwanted recreation, the total number of storages).
    #[arg(short = 'A', long)]
    pub autostart: Option<u32>,
    /// Node id to use (testing): a number, or M1, M2...
    #[arg(short = 'i', long)]
    pub nid: Option<String>,
    /// Number of replicas of a new cluster's partitions.
    #[arg(short = 'r', long)]
    pub replicas: Option<u32>,
    /// Number of partitions of a new cluster.
    #[arg(short = 'p', long)]
    pub partitions: Option<u32>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct StorageOptions {
    #[command(flatten)]
    pub server: ServerOptions,
    /// The database: an LMDB directory (created if missing).
    #[arg(short = 'd', long)]
    pub database: Option<PathBuf>,
    /// Database adapter; only LMDB is built in.
    #[arg(short = 'a', long)]
    pub adapter: Option<String>,
    /// Node id to use for a new database: a number, or S1, S2...
    #[arg(short = 'i', long)]
    pub nid: Option<String>,
    /// Remove an existing database if any, and exit.
    #[arg(long)]
    pub reset: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct AdminOptions {
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Options resolved from the command line, then the configuration file,
/// then NEO/py's defaults.
struct Resolved {
    section: Section,
    cluster: Bytes,
    masters: Vec<Address>,
    bind: Address,
}

impl ServerOptions {
    fn resolve(
        &self,
        program: &str,
        default_bind: &str,
        default_masters: &str,
    ) -> Result<Resolved, ConfigError> {
        let section = match &self.file {
            Some(file) => Section::load(file, self.section.as_deref().unwrap_or(program))?,
            None => Section::default(),
        };
        refuse_unimplemented(&section, program)?;
        let pick = |given: &Option<String>, name: &str| {
            given
                .clone()
                .or_else(|| section.get(name).map(str::to_string))
        };
        let cluster = pick(&self.cluster, "cluster").ok_or_else(|| {
            ConfigError("the cluster name is required (-c/--cluster)".to_string())
        })?;
        if cluster.is_empty() {
            return Err(ConfigError("the cluster name must not be empty".into()));
        }
        let masters = parse_masters(
            &pick(&self.masters, "masters").unwrap_or_else(|| default_masters.to_string()),
        )?;
        let bind = parse_address(
            &pick(&self.bind, "bind").unwrap_or_else(|| default_bind.to_string()),
            Some(0),
        )?;
        if let Some(path) = self
            .logfile
            .clone()
            .or_else(|| section.get("logfile").map(expand_home))
        {
            crate::log::to_file(&path).map_err(|e| {
                ConfigError(format!("cannot open the log file {}: {e}", path.display()))
            })?;
        }
        if self.verbose {
            crate::log::set_level(Level::Debug);
        }
        Ok(Resolved {
            section,
            cluster: cluster.into_bytes().into(),
            masters,
            bind,
        })
    }
}

/// Configuration keys NEO/py's nodes act on (`neo/lib/app.py` and each
/// node's option list) that neo-rs does not implement yet, by program.
/// NEO/py ignores keys it does not know, so a file written for it may hold
/// any of these: running without doing what they ask (TLS, backup, ...)
/// would be a silent surprise, so they are errors naming the key. The
/// storage's `wait` (for the database server to come up) is accepted: an
/// embedded LMDB is always there.
const UNIMPLEMENTED_KEYS: &[(&str, &[&str])] = &[
    ("*", &["ca", "cert", "key", "dynamic_master_list"]),
    (
        "master",
        &["upstream_cluster", "upstream_masters", "backup"],
    ),
    (
        "storage",
        &[
            "disable_pack",
            "disable_drop_partitions",
            "new_nid",
            "engine",
            "dedup",
            "reset",
        ],
    ),
    (
        "admin",
        &[
            "monitor_maxlag",
            "monitor_email",
            "monitor_backup",
            "smtp",
            "smtp_tls",
            "smtp_auth",
            "nid",
        ],
    ),
];

/// The keys of [`UNIMPLEMENTED_KEYS`] that are NEO/py yes/no options.
const BOOLEAN_KEYS: &[&str] = &[
    "backup",
    "disable_pack",
    "disable_drop_partitions",
    "new_nid",
    "dedup",
    "reset",
    "smtp_tls",
];

/// A yes/no value as Python's ConfigParser reads it.
fn parse_boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(ConfigError(format!("{key}: {value:?} is not yes or no"))),
    }
}

fn refuse_unimplemented(section: &Section, program: &str) -> Result<(), ConfigError> {
    let keys = UNIMPLEMENTED_KEYS
        .iter()
        .filter(|(p, _)| *p == "*" || *p == program)
        .flat_map(|(_, keys)| keys.iter());
    for key in keys {
        let Some(value) = section.get(key) else {
            continue;
        };
        // A yes/no option set to no asks for nothing (NEO/py reads it with
        // ConfigParser's getboolean).
        if BOOLEAN_KEYS.contains(key) && !parse_boolean(key, value)? {
            continue;
        }
        {
            let why = match *key {
                "reset" => "it empties the database: use --reset on the command line",
                "ca" | "cert" | "key" => "TLS is not implemented yet",
                _ => "NEO/py acts on it, neo-rs does not implement it yet",
            };
            return Err(ConfigError(format!(
                "configuration key {key:?} of {program}: {why}"
            )));
        }
    }
    Ok(())
}

/// A path from a configuration file, `~` expanded as NEO/py does for its
/// path options.
fn expand_home(text: &str) -> PathBuf {
    match (text.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(text),
    }
}

/// A numeric option from the command line or the configuration file.
fn number<T: std::str::FromStr>(
    given: Option<T>,
    section: &Section,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    match given {
        Some(value) => Ok(Some(value)),
        None => section
            .get(name)
            .map(|text| {
                text.parse()
                    .map_err(|_| ConfigError(format!("{name}: {text:?} is not a number")))
            })
            .transpose(),
    }
}

/// `-i/--nid`: NEO/py takes the raw number; `S1`/`M2` (any case) are
/// accepted too, for the node's own type.
fn parse_nid(text: &str, node_type: NodeType) -> Result<Nid, ConfigError> {
    let text = text.trim();
    if let Ok(raw) = text.parse::<i32>() {
        return Ok(Nid(raw));
    }
    match text.to_ascii_uppercase().parse::<Nid>() {
        Ok(nid) if nid.node_type() == Some(node_type) && nid != Nid::new(node_type, 0) => Ok(nid),
        _ => Err(ConfigError(format!(
            "bad node id {text:?}: a number or {}<n>",
            &Nid::new(node_type, 1).to_string()[..1]
        ))),
    }
}

/// Binds the listening socket first, so that the node is configured with
/// the address actually bound (a free port when 0 was asked).
pub fn listen(bind: &Address) -> Result<(TcpListener, Address), ConfigError> {
    let addr =
        runtime::resolve(bind).map_err(|e| ConfigError(format!("cannot resolve {bind}: {e}")))?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| ConfigError(format!("cannot listen on {addr}: {e}")))?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| ConfigError(format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ConfigError(format!("cannot listen on {addr}: {e}")))?;
    Ok((TcpListener::from_std(listener), address_of(local)))
}

fn seed() -> u64 {
    runtime::wall_now().as_unix_nanos() ^ (u64::from(std::process::id()) << 32)
}

pub fn master_config(options: &MasterOptions) -> Result<(MasterConfig, TcpListener), ConfigError> {
    let resolved = options.server.resolve("master", "127.0.0.1:10000", "")?;
    let section = &resolved.section;
    let (listener, bind) = listen(&resolved.bind)?;
    let nid = options
        .nid
        .clone()
        .or_else(|| section.get("nid").map(str::to_string))
        .map(|text| parse_nid(&text, NodeType::Master))
        .transpose()?;
    let config = MasterConfig {
        cluster: resolved.cluster,
        bind,
        masters: resolved.masters,
        partitions: Partitions::new(
            number(options.partitions, section, "partitions")?.unwrap_or(100),
        )
        .ok_or_else(|| {
            ConfigError(format!(
                "partitions must be between 1 and {}",
                neo_proto::PARTITIONS_COUNT_MAX
            ))
        })?,
        replicas: number(options.replicas, section, "replicas")?.unwrap_or(0),
        autostart: number(options.autostart, section, "autostart")?,
        nid,
        storage_ping: MasterConfig::DEFAULT_STORAGE_PING,
    };
    Ok((config, listener))
}

pub fn admin_config(options: &AdminOptions) -> Result<(AdminConfig, TcpListener), ConfigError> {
    let resolved = options
        .server
        .resolve("admin", "127.0.0.1:9999", "127.0.0.1:10000")?;
    let (listener, bind) = listen(&resolved.bind)?;
    Ok((
        AdminConfig {
            cluster: resolved.cluster,
            bind,
            masters: resolved.masters,
        },
        listener,
    ))
}

/// What `neo storage` will run on.
pub struct StorageSetup {
    pub config: StorageConfig,
    pub listener: TcpListener,
    pub database: PathBuf,
}

/// Where a storage's data lives, as NEO/py's storages announce it at
/// identification (`devpath`): the host name, then the device of the
/// database (decimal `st_dev`). The master's `tweak` spreads the copies of
/// a partition over different hosts, then different disks. A database not
/// created yet is on the device of its nearest existing parent.
pub fn topology_path(database: &Path) -> Vec<Bytes> {
    use std::os::unix::fs::MetadataExt;
    let device = database
        .ancestors()
        .find_map(|dir| std::fs::metadata(dir).ok())
        .map_or(0, |m| m.dev());
    vec![host_name().into(), device.to_string().into()]
}

/// The machine's host name (Linux: the kernel's), as Python's
/// `socket.gethostname()` gives it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

/// Resolves the storage's options; `None` when `--reset` did its job.
pub fn storage_setup(options: &StorageOptions) -> Result<Option<StorageSetup>, ConfigError> {
    let resolved = options
        .server
        .resolve("storage", "127.0.0.1", "127.0.0.1:10000")?;
    let section = &resolved.section;
    let database = options
        .database
        .clone()
        .or_else(|| section.get("database").map(PathBuf::from))
        .ok_or_else(|| ConfigError("the database is required (-d/--database)".into()))?;
    let adapter = options
        .adapter
        .clone()
        .or_else(|| section.get("adapter").map(str::to_string));
    match adapter {
        Some(adapter) if !adapter.eq_ignore_ascii_case("lmdb") => {
            return Err(ConfigError(format!(
                "adapter {adapter:?} is not available: neo-rs stores data in LMDB (-a LMDB)"
            )));
        }
        // NEO/py's default adapter is MySQL: a file written for it may name
        // a MySQL database, which would become a directory of that name.
        None if database.to_string_lossy().contains('@') => {
            return Err(ConfigError(format!(
                "database {:?} looks like a MySQL connection (NEO/py's default adapter): \
                 neo-rs stores data in LMDB, give a directory (-a LMDB)",
                database.display()
            )));
        }
        _ => {}
    }
    if options.reset {
        reset_database(&database)?;
        return Ok(None);
    }
    if resolved.masters.is_empty() {
        return Err(ConfigError(
            "at least one master is required (-m/--masters)".into(),
        ));
    }
    let nid = options
        .nid
        .clone()
        .or_else(|| section.get("nid").map(str::to_string))
        .map(|text| parse_nid(&text, NodeType::Storage))
        .transpose()?;
    let (listener, bind) = listen(&resolved.bind)?;
    Ok(Some(StorageSetup {
        config: StorageConfig {
            cluster: resolved.cluster,
            bind,
            masters: resolved.masters,
            devpath: topology_path(&database),
            nid,
            seed: seed(),
        },
        listener,
        database,
    }))
}

/// `--reset`: removes the database directory's LMDB files.
fn reset_database(database: &Path) -> Result<(), ConfigError> {
    for name in ["data.mdb", "lock.mdb"] {
        let path = database.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfigError(format!(
                    "cannot remove {}: {e}",
                    path.display()
                )))
            }
        }
    }
    crate::log::log(
        Level::Info,
        "storage",
        &format!("database {} reset", database.display()),
    );
    Ok(())
}

/// Runs a node until it exits.
fn run_node<N: Hosted>(node: N, name: &str, listener: TcpListener) -> Result<Exit, String> {
    let mut runtime =
        Runtime::new(node, name, Some(listener)).map_err(|e| format!("event loop: {e}"))?;
    runtime.run().map_err(|e| format!("event loop: {e}"))
}

/// Runs a master; `name` prefixes its log lines.
pub fn start_master(
    config: MasterConfig,
    listener: TcpListener,
    name: &str,
) -> Result<Exit, String> {
    run_node(
        Master::new(config, runtime::now(), runtime::wall_now()),
        name,
        listener,
    )
}

pub fn start_admin(config: AdminConfig, listener: TcpListener, name: &str) -> Result<Exit, String> {
    crate::log::log(
        Level::Info,
        name,
        &format!(
            "admin of cluster {:?} listening on {}",
            String::from_utf8_lossy(&config.cluster),
            config.bind
        ),
    );
    run_node(Admin::new(config, runtime::now()), name, listener)
}

pub fn start_storage<S: Store>(
    config: StorageConfig,
    store: S,
    listener: TcpListener,
    name: &str,
) -> Result<Exit, String> {
    let storage = Storage::new(config, store, runtime::now()).map_err(|e| e.to_string())?;
    run_node(storage, name, listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_keys_set_to_no_ask_for_nothing() {
        let section =
            |line: &str| Section::parse(&format!("[storage]\n{line}\n"), "storage").unwrap();
        assert!(refuse_unimplemented(&section("dedup = false"), "storage").is_ok());
        assert!(refuse_unimplemented(&section("disable-pack = off"), "storage").is_ok());
        assert!(refuse_unimplemented(&section("dedup = yes"), "storage").is_err());
        assert!(refuse_unimplemented(&section("engine = InnoDB"), "storage").is_err());
        assert!(refuse_unimplemented(&section("engine = InnoDB"), "master").is_ok());
    }

    #[test]
    fn a_storage_announces_its_host_and_the_device_of_its_database() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir();
        let path = topology_path(&dir.join("not/created/yet"));
        assert_eq!(path.len(), 2);
        assert!(!path[0].is_empty(), "a host name");
        let device = std::fs::metadata(&dir).unwrap().dev().to_string();
        assert_eq!(path[1], device.as_bytes());
    }
}
