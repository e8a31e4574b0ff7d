//! Opening a store: the directory, the LMDB environment, the layout
//! version.

use std::fmt;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{Env, EnvOpenOptions};

use super::codec::{self, config_key, FORMAT_VERSION};
use super::tables::{Db, Table, MAP_GRANULE};

/// Map size of a store opened with [`LmdbStore::open`](super::LmdbStore::open):
/// address space only, the file grows with the data.
pub const DEFAULT_MAP_SIZE: usize = if cfg!(target_pointer_width = "64") {
    1 << 40
} else {
    1 << 30
};

/// Why a store cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The directory cannot be created or used (permissions, ...).
    Io { path: PathBuf, error: io::Error },
    /// The path exists and is not a directory.
    NotADirectory(PathBuf),
    /// A process (this one or another) has the store open: its lock file
    /// is locked. Two storages writing one database would corrupt it.
    AlreadyOpen(PathBuf),
    /// LMDB refuses the files (not an LMDB environment, incompatible LMDB
    /// version, ...).
    Lmdb { path: PathBuf, error: heed::Error },
    /// An LMDB environment that is not a NEO store.
    NotAStore(PathBuf),
    /// A NEO store of a layout version this program does not know.
    UnsupportedFormat { path: PathBuf, version: u32 },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            OpenError::NotADirectory(path) => write!(f, "{}: not a directory", path.display()),
            OpenError::AlreadyOpen(path) => {
                write!(
                    f,
                    "{}: store already in use (another storage process has it open, its lock {} is held)",
                    path.display(),
                    path.join(LOCK_FILE).display()
                )
            }
            OpenError::Lmdb { path, error } => {
                write!(
                    f,
                    "{}: cannot open LMDB environment: {error}",
                    path.display()
                )
            }
            OpenError::NotAStore(path) => {
                write!(f, "{}: LMDB environment is not a NEO store", path.display())
            }
            OpenError::UnsupportedFormat { path, version } => write!(
                f,
                "{}: NEO store format {version}, this program knows format {FORMAT_VERSION}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { error, .. } => Some(error),
            OpenError::Lmdb { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The file a store's process keeps locked (exclusive `flock`) while it
/// has the store open. LMDB's own lock file lets several processes share
/// an environment; a NEO store must have one writer, so a second storage
/// on the same directory is refused at start.
pub const LOCK_FILE: &str = "neo.lock";

/// Opens (creating it if needed) the environment in `dir`, with a map of
/// at least `map_size` bytes, and the tables of a store in it; the
/// returned file holds the store's lock until it is dropped.
pub(super) fn open(
    dir: &Path,
    map_size: usize,
) -> Result<(Env, [Db; Table::ALL.len()], File), OpenError> {
    match std::fs::metadata(dir) {
        Ok(metadata) if !metadata.is_dir() => return Err(OpenError::NotADirectory(dir.to_owned())),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?
        }
        Err(error) => return Err(io_error(dir, error)),
    }
    let lock = lock(dir)?;
    let mut options = EnvOpenOptions::new();
    options
        .map_size(map_size.max(1).next_multiple_of(MAP_GRANULE))
        .max_dbs(Table::ALL.len() as u32);
    // SAFETY: LMDB maps the file; changing it behind LMDB's back would be
    // undefined behaviour. heed refuses a second `Env` on the same path in
    // this process, and other processes go through LMDB's lock file like we
    // do.
    let env = unsafe { options.open(dir) }.map_err(|error| lmdb_error(dir, error))?;
    let dbs = open_tables(&env, dir)?;
    Ok((env, dbs, lock))
}

/// How often, and how far apart, taking a busy lock is tried before the
/// store is declared open elsewhere. A process that forks (to run a
/// program) shares our lock until its child execs, so a store closed and
/// reopened meanwhile finds it busy for an instant.
const LOCK_ATTEMPTS_COUNT_MAX: u32 = 20;
const LOCK_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Takes the store's lock, or says who holds it.
fn lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| io_error(&path, error))?;
    for attempt in 1..=LOCK_ATTEMPTS_COUNT_MAX {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if attempt < LOCK_ATTEMPTS_COUNT_MAX => {
                std::thread::sleep(LOCK_RETRY_DELAY)
            }
            Err(TryLockError::WouldBlock) => break,
            Err(TryLockError::Error(error)) => return Err(io_error(&path, error)),
        }
    }
    Err(OpenError::AlreadyOpen(dir.to_owned()))
}

/// Opens the tables of a store of the current format, creating them (and
/// recording the format) in an empty environment.
fn open_tables(env: &Env, dir: &Path) -> Result<[Db; Table::ALL.len()], OpenError> {
    let lmdb = |error| lmdb_error(dir, error);
    let mut txn = env.write_txn().map_err(lmdb)?;
    let config = env
        .open_database::<Bytes, Bytes>(&txn, Some(Table::Config.name()))
        .map_err(lmdb)?;
    let fresh = match config {
        Some(config) => match config.get(&txn, config_key::FORMAT).map_err(lmdb)? {
            Some(version) if version.len() == 4 => {
                let version = codec::decode_u32(version, "format version");
                if version != FORMAT_VERSION {
                    return Err(OpenError::UnsupportedFormat {
                        path: dir.to_owned(),
                        version,
                    });
                }
                false
            }
            _ => return Err(OpenError::NotAStore(dir.to_owned())),
        },
        None => {
            // Nothing of ours: a new store, unless the environment holds
            // something else.
            let main = env
                .open_database::<Bytes, Bytes>(&txn, None)
                .map_err(lmdb)?;
            if let Some(main) = main {
                if !main.is_empty(&txn).map_err(lmdb)? {
                    return Err(OpenError::NotAStore(dir.to_owned()));
                }
            }
            true
        }
    };
    let mut dbs = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        dbs.push(
            env.create_database::<Bytes, Bytes>(&mut txn, Some(table.name()))
                .map_err(lmdb)?,
        );
    }
    let dbs: [Db; Table::ALL.len()] = dbs.try_into().unwrap_or_else(|_| unreachable!());
    if fresh {
        dbs[Table::Config as usize]
            .put(&mut txn, config_key::FORMAT, &FORMAT_VERSION.to_be_bytes())
            .map_err(lmdb)?;
    }
    txn.commit().map_err(lmdb)?;
    Ok(dbs)
}

fn io_error(dir: &Path, error: io::Error) -> OpenError {
    OpenError::Io {
        path: dir.to_owned(),
        error,
    }
}

fn lmdb_error(dir: &Path, error: heed::Error) -> OpenError {
    match error {
        heed::Error::Io(error) => io_error(dir, error),
        heed::Error::EnvAlreadyOpened => OpenError::AlreadyOpen(dir.to_owned()),
        error => OpenError::Lmdb {
            path: dir.to_owned(),
            error,
        },
    }
}
