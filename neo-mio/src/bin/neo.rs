//! `neo`: every NEO program in one binary.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use neo_mio::cli::wire;

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
    /// Work with raw NEO byte streams (captures).
    #[command(subcommand)]
    Wire(WireCommand),
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
        Command::Wire(WireCommand::Decode { file, hex }) => wire_decode(file, hex),
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
