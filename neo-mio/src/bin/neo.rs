//! `neo`: every NEO program in one binary.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use neo_mio::cli::demo::{self, DemoOptions};
use neo_mio::cli::local::{LocalCluster, LocalOptions};
use neo_mio::cli::node::{self, AdminOptions, MasterOptions, StorageOptions};
use neo_mio::cli::{bench, ctl, wire};
use neo_mio::lmdb::LmdbStore;
use neo_proto::Partitions;

#[derive(Parser)]
#[command(
    name = "neo",
    version,
    about = "NEO, the distributed transactional object storage for ZODB (neo-rs, wire-compatible with NEO/py)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A master node (NEO/py's neomaster): elects a primary, allocates ids,
    /// owns the partition table and coordinates commits.
    Master(MasterOptions),
    /// A storage node (NEO/py's neostorage), keeping its data in LMDB.
    Storage(StorageOptions),
    /// An admin node (NEO/py's neoadmin): what `neo ctl` talks to.
    Admin(AdminOptions),
    /// A whole cluster in this process (NEO/py's neosimple): masters,
    /// storages and an admin on loopback; prints the master addresses and
    /// serves until interrupted.
    Cluster(ClusterOptions),
    /// Send a command to an admin node, as NEO/py's neoctl does (`neo ctl`
    /// alone lists the commands).
    Ctl(ctl::CtlArgs),
    /// Runs a demo workload through the Rust client and prints what it
    /// did: on a local cluster started with data in a temporary directory
    /// (removed at the end), or on the cluster -c/-m name.
    Demo(DemoArgs),
    /// Reads every transaction and object revision of a cluster through
    /// the Rust client and prints one SHA-1 of it all: equal digests, equal
    /// data (see neo-mio/src/cli/digest.rs for what is digested).
    Digest(DigestArgs),
    /// Measures a cluster (ours or NEO/py's) through the Rust client:
    /// loopback round trip, commits, cold and hot loads, concurrent
    /// clients, a conflict mix; a table, or JSON with --json.
    Bench(BenchArgs),
    /// Work with raw NEO byte streams (captures).
    #[command(subcommand)]
    Wire(WireCommand),
}

#[derive(Args)]
struct ClusterOptions {
    /// The cluster name.
    #[arg(short = 'c', long, default_value = "neo")]
    cluster: String,
    /// Number of master nodes.
    #[arg(long, default_value_t = 1)]
    masters: usize,
    /// Number of storage nodes.
    #[arg(long, default_value_t = 2)]
    storages: usize,
    /// Number of partitions.
    #[arg(short = 'p', long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=i64::from(neo_proto::PARTITIONS_COUNT_MAX)))]
    partitions: u32,
    /// Number of replicas of each partition.
    #[arg(short = 'r', long, default_value_t = 1)]
    replicas: u32,
    /// Data directory (kept); default: a temporary directory, removed when
    /// the cluster stops.
    #[arg(short = 'd', long)]
    data: Option<PathBuf>,
    /// First port: masters, then storages, then the admin; 0: free ports.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(short = 'H', long, default_value = "127.0.0.1")]
    host: String,
}

impl ClusterOptions {
    fn local(&self) -> LocalOptions {
        LocalOptions {
            cluster: self.cluster.clone(),
            masters: self.masters,
            storages: self.storages,
            partitions: Partitions::new(self.partitions).expect("clap refuses 0 partitions"),
            replicas: self.replicas,
            data: self.data.clone(),
            host: self.host.clone(),
            port: self.port,
        }
    }
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    target: ClusterTarget,
    /// Transactions to commit.
    #[arg(long, default_value_t = 100)]
    transactions: usize,
    /// Objects per transaction.
    #[arg(long, default_value_t = 10)]
    objects: usize,
    /// Bytes per object.
    #[arg(long, default_value_t = 100)]
    size: usize,
}

/// A running cluster to connect to, as a NEO client names it.
#[derive(Args)]
struct ClusterTarget {
    /// The cluster name.
    #[arg(short = 'c', long)]
    cluster: Option<String>,
    /// Its master nodes: "HOST:PORT [HOST:PORT...]" (IPv6 as [ADDR]:PORT).
    #[arg(short = 'm', long)]
    masters: Option<String>,
}

impl ClusterTarget {
    /// The cluster name and master addresses, if given (both or none).
    fn resolve(&self) -> Result<Option<(String, Vec<std::net::SocketAddr>)>, String> {
        let (cluster, masters) = match (&self.cluster, &self.masters) {
            (None, None) => return Ok(None),
            (Some(cluster), Some(masters)) => (cluster, masters),
            (None, Some(_)) => return Err("the cluster name is required (-c/--cluster)".into()),
            (Some(_), None) => return Err("the master nodes are required (-m/--masters)".into()),
        };
        let addresses = neo_mio::cli::config::parse_masters(masters).map_err(|e| e.to_string())?;
        if addresses.is_empty() {
            return Err("the master nodes are required (-m/--masters)".into());
        }
        let masters = addresses
            .iter()
            .map(|a| neo_mio::runtime::resolve(a).map_err(|e| format!("master {a}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Some((cluster.clone(), masters)))
    }

    /// The cluster name and master addresses, which must be given.
    fn require(&self) -> Result<(String, Vec<std::net::SocketAddr>), String> {
        self.resolve()?
            .ok_or_else(|| "the cluster name is required (-c/--cluster)".to_string())
    }
}

#[derive(Args)]
struct DigestArgs {
    #[command(flatten)]
    target: ClusterTarget,
    /// Also print the digested lines (one per transaction and record).
    #[arg(short = 'v', long)]
    verbose: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    target: ClusterTarget,
    /// Workloads to run, comma-separated: rtt, commit, cold, hot,
    /// clients-commit, clients-load, conflicts (default: all).
    #[arg(short = 'w', long, value_delimiter = ',')]
    workloads: Vec<bench::Workload>,
    /// Also measure the loopback TCP round trip (with --workloads).
    #[arg(long)]
    rtt: bool,
    /// Transactions per client.
    #[arg(short = 't', long, default_value_t = 200)]
    transactions: usize,
    /// New objects per transaction.
    #[arg(short = 'k', long, default_value_t = 10)]
    objects: usize,
    /// Bytes per object.
    #[arg(short = 's', long, default_value_t = 100)]
    size: usize,
    /// Concurrent clients of the clients-* and conflicts workloads.
    #[arg(short = 'n', long, default_value_t = 8)]
    clients: usize,
    /// Shared counters of the conflicts workload.
    #[arg(long, default_value_t = 4)]
    hot_objects: usize,
    /// Round trips of the rtt probe.
    #[arg(long, default_value_t = 5000)]
    round_trips: usize,
    /// Report the memory of this (server) process; repeatable.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum WireCommand {
    /// Decode a NEO byte stream and print one line per packet: message id,
    /// packet name and fields (OIDs/TIDs in hex, enums by name).
    ///
    /// The stream may start with the NEO handshake (checked) or directly
    /// with packets. An undecodable stream ends with an error on stderr and
    /// exit status 1, after the packets that decoded.
    Decode {
        /// File holding one direction of a connection; standard input if
        /// absent or "-".
        file: Option<PathBuf>,
        /// The input is hex text (whitespace ignored), e.g. copied from a
        /// packet dump.
        #[arg(long)]
        hex: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Master(options) => master(&options),
        Command::Storage(options) => storage(&options),
        Command::Admin(options) => admin(&options),
        Command::Cluster(options) => cluster(&options),
        Command::Ctl(args) => ctl_command(args),
        Command::Demo(args) => run_demo(&args),
        Command::Digest(args) => run_digest(&args),
        Command::Bench(args) => run_bench(args),
        Command::Wire(WireCommand::Decode { file, hex }) => wire_decode(file, hex),
    }
}

/// Reports why a program could not run or stopped, NEO/py style.
fn fail(program: &str, error: impl std::fmt::Display) -> ExitCode {
    eprintln!("neo {program}: {error}");
    ExitCode::FAILURE
}

fn exit_code(program: &str, result: Result<neo_mio::runtime::Exit, String>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(program, error),
    }
}

fn master(options: &MasterOptions) -> ExitCode {
    match node::master_config(options) {
        Ok((config, listener)) => {
            exit_code("master", node::start_master(config, listener, "master"))
        }
        Err(error) => fail("master", error),
    }
}

fn admin(options: &AdminOptions) -> ExitCode {
    match node::admin_config(options) {
        Ok((config, listener)) => exit_code("admin", node::start_admin(config, listener, "admin")),
        Err(error) => fail("admin", error),
    }
}

fn storage(options: &StorageOptions) -> ExitCode {
    let setup = match node::storage_setup(options) {
        Ok(Some(setup)) => setup,
        Ok(None) => return ExitCode::SUCCESS, // --reset
        Err(error) => return fail("storage", error),
    };
    let store = match LmdbStore::open(&setup.database) {
        Ok(store) => store,
        Err(error) => {
            return fail(
                "storage",
                format!(
                    "cannot open the database {}: {error}",
                    setup.database.display()
                ),
            )
        }
    };
    exit_code(
        "storage",
        node::start_storage(setup.config, store, setup.listener, "storage"),
    )
}

fn open_lmdb(dir: &std::path::Path) -> Result<LmdbStore, String> {
    LmdbStore::open(dir).map_err(|e| format!("cannot open the database {}: {e}", dir.display()))
}

fn cluster(options: &ClusterOptions) -> ExitCode {
    let cluster = match LocalCluster::start(&options.local(), open_lmdb) {
        Ok(cluster) => cluster,
        Err(error) => return fail("cluster", error),
    };
    if let Err(error) = cluster.wait_running(std::time::Duration::from_secs(30)) {
        return fail("cluster", error);
    }
    println!("cluster {:?} is RUNNING", cluster.cluster);
    println!("masters: {}", cluster.masters_option());
    println!("admin:   {}", cluster.admin);
    println!("data:    {}", cluster.data.display());
    println!(
        "try:     neo ctl -a {} print pt    (Ctrl-C stops the cluster)",
        cluster.admin
    );
    let _ = io::Write::flush(&mut io::stdout());
    neo_mio::cli::local::wait_for_interrupt();
    drop(cluster);
    ExitCode::SUCCESS
}

fn ctl_command(args: ctl::CtlArgs) -> ExitCode {
    let stdout = io::stdout();
    let mut result = Ok(());
    // `--wait` alone only waits; otherwise the command runs first.
    if args.wait.is_none() || !args.words.is_empty() {
        result = ctl::run(args.address, &args.words, &mut stdout.lock());
    }
    if let (Ok(()), Some(limit)) = (&result, args.wait) {
        result = neo_mio::cli::progress::wait_until_settled(
            args.address,
            limit,
            &mut io::stderr().lock(),
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ctl::CtlError::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        // No "neo ctl:" prefix: neoctl prints the bare message, and
        // scripts match it.
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn run_demo(args: &DemoArgs) -> ExitCode {
    let demo = DemoOptions {
        transactions: args.transactions,
        objects_per_transaction: args.objects,
        object_size: args.size,
    };
    let stdout = io::stdout();
    match args.target.resolve() {
        Err(error) => fail("demo", error),
        Ok(Some((cluster, masters))) => {
            match demo::run(&cluster, &masters, &demo, &mut stdout.lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail("demo", error),
            }
        }
        Ok(None) => {
            let options = LocalOptions {
                cluster: "demo".to_string(),
                ..LocalOptions::default()
            };
            let cluster = match LocalCluster::start(&options, open_lmdb) {
                Ok(cluster) => cluster,
                Err(error) => return fail("demo", error),
            };
            println!(
                "started cluster {:?}: {} master(s) at {}, {} storages (LMDB in {}), {} partitions, {} replica(s)",
                cluster.cluster,
                options.masters,
                cluster.masters_option(),
                options.storages,
                cluster.data.display(),
                options.partitions,
                options.replicas
            );
            let result = demo::run(
                &cluster.cluster,
                &cluster.masters,
                &demo,
                &mut stdout.lock(),
            );
            drop(cluster);
            match result {
                Ok(()) => {
                    println!("done; the temporary data directory was removed");
                    ExitCode::SUCCESS
                }
                Err(error) => fail("demo", error),
            }
        }
    }
}

fn run_digest(args: &DigestArgs) -> ExitCode {
    let (cluster, masters) = match args.target.require() {
        Ok(target) => target,
        Err(error) => return fail("digest", error),
    };
    let stdout = io::stdout();
    match neo_mio::cli::digest::run(&cluster, &masters, args.verbose, &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail("digest", error),
    }
}

fn run_bench(args: BenchArgs) -> ExitCode {
    let (cluster, masters) = match args.target.require() {
        Ok(target) => target,
        Err(error) => return fail("bench", error),
    };
    let mut workloads = args.workloads;
    if workloads.is_empty() {
        workloads = bench::Workload::ALL.to_vec();
    }
    if args.rtt && !workloads.contains(&bench::Workload::Rtt) {
        workloads.push(bench::Workload::Rtt);
    }
    let options = bench::BenchOptions {
        workloads,
        transactions: args.transactions,
        objects: args.objects,
        size: args.size,
        clients: args.clients.max(1),
        hot_objects: args.hot_objects,
        round_trips: args.round_trips,
        pids: args.pids,
        progress: true,
    };
    match bench::run(&cluster, &masters, &options, &mut io::stderr()) {
        Ok(report) if args.json => {
            println!("{}", bench::json(&report));
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", bench::table(&report, &options));
            ExitCode::SUCCESS
        }
        Err(error) => fail("bench", error),
    }
}

fn wire_decode(file: Option<PathBuf>, hex: bool) -> ExitCode {
    let mut input: Box<dyn Read> = match &file {
        Some(path) if path.as_os_str() != "-" => match File::open(path) {
            Ok(file) => Box::new(file),
            Err(error) => {
                eprintln!("neo wire decode: cannot open {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        },
        _ => Box::new(io::stdin().lock()),
    };
    let stdout = io::stdout();
    let mut output = stdout.lock();
    match wire::decode_stream(&mut input, hex, &mut output) {
        Ok(_) => ExitCode::SUCCESS,
        Err(wire::WireError::Io(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("neo wire decode: {error}");
            ExitCode::FAILURE
        }
    }
}
