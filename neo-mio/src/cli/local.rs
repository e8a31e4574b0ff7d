//! `neo cluster`: a whole cluster in one process (NEO/py's `neosimple`):
//! masters, storages and an admin, each on its own thread and event loop,
//! on loopback, with data in a directory or a temporary one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use neo_core::admin::AdminConfig;
use neo_core::master::MasterConfig;
use neo_core::storage::store::Store;
use neo_core::storage::StorageConfig;
use neo_core::Level;
use neo_proto::{Address, Partitions};

use super::node::{listen, start_admin, start_master, start_storage};
use crate::client::NeoClient;
use crate::runtime::resolve;

/// The shape of a local cluster.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub cluster: String,
    pub masters: usize,
    pub storages: usize,
    pub partitions: Partitions,
    pub replicas: u32,
    /// Data directory (one sub-directory per storage); a temporary one,
    /// removed at the end, if `None`.
    pub data: Option<PathBuf>,
    /// Loopback address to listen on.
    pub host: String,
    /// First port (masters, then storages, then the admin); 0: free ports.
    pub port: u16,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            cluster: "neo".to_string(),
            masters: 1,
            storages: 2,
            partitions: Partitions::new(12).unwrap(),
            replicas: 1,
            data: None,
            host: "127.0.0.1".to_string(),
            port: 0,
        }
    }
}

pub struct LocalCluster {
    pub cluster: String,
    pub masters: Vec<SocketAddr>,
    pub admin: SocketAddr,
    pub data: PathBuf,
    /// Remove `data` when dropped.
    temporary: bool,
}

impl LocalCluster {
    /// Starts every node; `open_store` opens a storage's database in the
    /// directory it is given, on the storage's own thread (an LMDB write
    /// transaction belongs to the thread that began it).
    pub fn start<S, F>(options: &LocalOptions, open_store: F) -> Result<LocalCluster, String>
    where
        S: Store + 'static,
        F: Fn(&Path) -> Result<S, String> + Clone + Send + 'static,
    {
        if options.masters == 0 || options.storages == 0 {
            return Err("a cluster needs at least one master and one storage".into());
        }
        if options.replicas as usize >= options.storages {
            return Err(format!(
                "{} replica(s) need at least {} storages",
                options.replicas,
                options.replicas + 1
            ));
        }
        let (data, temporary) = match &options.data {
            Some(dir) => (dir.clone(), false),
            None => (temporary_dir()?, true),
        };
        let cluster = LocalCluster {
            cluster: options.cluster.clone(),
            masters: Vec::new(),
            admin: "127.0.0.1:0".parse().unwrap(),
            data,
            temporary,
        };
        cluster.spawn(options, open_store)
    }

    fn spawn<S, F>(mut self, options: &LocalOptions, open_store: F) -> Result<LocalCluster, String>
    where
        S: Store + 'static,
        F: Fn(&Path) -> Result<S, String> + Clone + Send + 'static,
    {
        let mut next_port = options.port;
        let mut bind = || {
            let address = Address {
                host: options.host.clone().into(),
                port: next_port,
            };
            if next_port != 0 {
                next_port += 1;
            }
            listen(&address).map_err(|e| e.to_string())
        };
        let masters: Vec<_> = (0..options.masters)
            .map(|_| bind())
            .collect::<Result<_, _>>()?;
        let master_addresses: Vec<Address> = masters.iter().map(|(_, a)| a.clone()).collect();
        let storages: Vec<_> = (0..options.storages)
            .map(|_| bind())
            .collect::<Result<_, _>>()?;
        let (admin_listener, admin_address) = bind()?;
        let name: bytes::Bytes = options.cluster.clone().into_bytes().into();

        for (index, (listener, address)) in masters.into_iter().enumerate() {
            let config = MasterConfig {
                cluster: name.clone(),
                bind: address,
                masters: master_addresses.clone(),
                partitions: options.partitions,
                replicas: options.replicas,
                autostart: Some(options.storages as u32),
                nid: None,
                storage_ping: MasterConfig::DEFAULT_STORAGE_PING,
            };
            let name = format!("master{index}");
            thread::spawn(move || exit_with(start_master(config, listener, &name)));
        }
        for (index, (listener, address)) in storages.into_iter().enumerate() {
            let dir = self.data.join(format!("storage{index}"));
            let open_store = open_store.clone();
            let config = StorageConfig {
                cluster: name.clone(),
                bind: address,
                masters: master_addresses.clone(),
                // One machine, one disk: no topology to spread over.
                devpath: Vec::new(),
                nid: None,
                seed: crate::runtime::wall_now().as_unix_nanos() ^ index as u64,
            };
            let name = format!("storage{index}");
            thread::spawn(move || {
                exit_with(
                    open_store(&dir)
                        .and_then(|store| start_storage(config, store, listener, &name)),
                )
            });
        }
        let admin = AdminConfig {
            cluster: name,
            bind: admin_address.clone(),
            masters: master_addresses.clone(),
        };
        thread::spawn(move || exit_with(start_admin(admin, admin_listener, "admin")));

        self.masters = master_addresses
            .iter()
            .map(|a| resolve(a).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        self.admin = resolve(&admin_address).map_err(|e| e.to_string())?;
        Ok(self)
    }

    /// Waits until the cluster serves clients.
    pub fn wait_running(&self, timeout: Duration) -> Result<(), String> {
        let config = neo_core::client::ClientConfig::new(self.cluster.clone(), self.addresses());
        NeoClient::with_config_and_timeout(config, timeout)
            .map(drop)
            .map_err(|e| format!("the cluster did not start: {e}"))
    }

    /// The masters as NEO addresses.
    pub fn addresses(&self) -> Vec<Address> {
        self.masters
            .iter()
            .map(|&m| crate::runtime::address_of(m))
            .collect()
    }

    /// `host:port host:port`, as `-m/--masters` takes them.
    pub fn masters_option(&self) -> String {
        self.masters
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

/// A node of a local cluster stopped: the cluster is not what the user
/// asked for any more, so the whole process ends (after saying why).
fn exit_with(result: Result<crate::runtime::Exit, String>) {
    match result {
        Ok(exit) => {
            crate::log::log(
                Level::Info,
                "cluster",
                &format!("a node stopped: {}", exit.reason),
            );
        }
        Err(error) => {
            crate::log::log(Level::Error, "cluster", &format!("a node failed: {error}"));
            std::process::exit(1);
        }
    }
}

/// Blocks until the process is asked to stop (SIGINT, SIGTERM, SIGHUP),
/// so that the caller can clean up before exiting.
pub fn wait_for_interrupt() {
    let (stop, stopped) = std::sync::mpsc::channel();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = stop.send(());
    }) {
        crate::log::log(
            Level::Warn,
            "cluster",
            &format!("cannot catch signals: {error}"),
        );
        loop {
            thread::park();
        }
    }
    let _ = stopped.recv();
}

/// A new directory under the system's temporary directory.
fn temporary_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!(
            "neo-cluster-{}-{}",
            std::process::id(),
            crate::runtime::wall_now().as_unix_nanos() % 1_000_000 + u64::from(attempt)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(format!("cannot create a directory in {}", base.display()))
}
