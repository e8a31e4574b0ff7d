//! Object data as NEO stores and transmits it: optionally zlib-compressed,
//! with the SHA-1 of the bytes as transmitted.
//!
//! The client compresses a pickle and keeps the compressed form only when it
//! is strictly shorter (as NEO/py's client does); storages verify checksums
//! of what they receive and never recompress; readers verify again and
//! decompress.

use std::cell::RefCell;
use std::fmt;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use neo_proto::{Checksum, ObjectData};
use sha1::{Digest, Sha1};

/// Compression value of data stored as is.
pub const COMPRESSION_NONE: u32 = 0;
/// Compression value of zlib data.
pub const COMPRESSION_ZLIB: u32 = 1;

/// Largest object a reader agrees to decompress. NEO/py's packet limit
/// (64 MiB) bounds compressed data; this bounds what a hostile or corrupt
/// zlib stream may expand to.
pub const DECOMPRESSED_SIZE_MAX: usize = 256 << 20;

/// SHA-1 of `bytes`.
pub fn checksum(bytes: &[u8]) -> Checksum {
    Checksum(Sha1::digest(bytes).into())
}

/// What is wrong with received object data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    /// Compression is neither 0 nor 1.
    UnknownCompression(u32),
    /// The bytes do not match their checksum.
    ChecksumMismatch {
        /// The checksum sent with the data.
        expected: Checksum,
        /// SHA-1 of the bytes as received.
        actual: Checksum,
    },
    /// The zlib stream is invalid.
    BadZlib(String),
    /// The zlib stream expands beyond [`DECOMPRESSED_SIZE_MAX`].
    TooLarge,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::UnknownCompression(value) => write!(f, "unknown compression {value}"),
            DataError::ChecksumMismatch { expected, actual } => {
                write!(
                    f,
                    "checksum mismatch: expected {expected}, data has {actual}"
                )
            }
            DataError::BadZlib(error) => write!(f, "invalid zlib data: {error}"),
            DataError::TooLarge => write!(
                f,
                "compressed data expands beyond {DECOMPRESSED_SIZE_MAX} bytes"
            ),
        }
    }
}

impl std::error::Error for DataError {}

thread_local! {
    // zlib's deflate state is about 270 KiB and its inflate state 40 KiB:
    // allocating one per object cost more than the compression itself (the
    // allocator grew and trimmed the heap around every store). One of each
    // per thread, reset between objects; the output is the same.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), true));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

/// `raw` zlib-compressed, if that is strictly shorter.
fn deflate_if_shorter(raw: &[u8]) -> Option<Vec<u8>> {
    DEFLATE.with(|deflate| {
        let mut deflate = deflate.borrow_mut();
        deflate.reset();
        // Room for one byte less than the input: a stream that does not
        // end in there is not worth keeping.
        let mut compressed = Vec::with_capacity(raw.len().saturating_sub(1));
        match deflate.compress_vec(raw, &mut compressed, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => Some(compressed),
            _ => None,
        }
    })
}

/// Prepares a pickle for storing: zlib at the default level if that makes
/// it strictly shorter and `compress` is on, else the bytes as they are.
pub fn pack(raw: Bytes, compress: bool) -> ObjectData {
    if compress && !raw.is_empty() {
        if let Some(compressed) = deflate_if_shorter(&raw) {
            return ObjectData {
                compression: COMPRESSION_ZLIB,
                checksum: checksum(&compressed),
                data: compressed.into(),
            };
        }
    }
    ObjectData {
        compression: COMPRESSION_NONE,
        checksum: checksum(&raw),
        data: raw,
    }
}

/// "No data": a deletion, or an undone creation.
pub fn no_data() -> ObjectData {
    ObjectData {
        compression: COMPRESSION_NONE,
        checksum: Checksum::ZERO,
        data: Bytes::new(),
    }
}

/// Checks what a storage receives: a known compression and, unless it is
/// the "no data" form, a checksum that matches.
pub fn verify(data: &ObjectData) -> Result<(), DataError> {
    if data.compression > COMPRESSION_ZLIB {
        return Err(DataError::UnknownCompression(data.compression));
    }
    if data.data.is_empty() && data.checksum.is_zero() {
        return Ok(());
    }
    let actual = checksum(&data.data);
    if actual != data.checksum {
        return Err(DataError::ChecksumMismatch {
            expected: data.checksum,
            actual,
        });
    }
    Ok(())
}

/// The pickle of verified data: decompressed if needed (zero-copy when not).
pub fn unpack(data: &ObjectData) -> Result<Bytes, DataError> {
    verify(data)?;
    if data.compression == COMPRESSION_NONE {
        return Ok(data.data.clone());
    }
    inflate(&data.data).map(Bytes::from)
}

fn inflate(input: &[u8]) -> Result<Vec<u8>, DataError> {
    INFLATE.with(|inflate| {
        let mut inflate = inflate.borrow_mut();
        inflate.reset(true);
        let mut raw = Vec::with_capacity(input.len().saturating_mul(3).clamp(64, 1 << 20));
        loop {
            let (read, written) = (inflate.total_in(), inflate.total_out());
            let rest = &input[read as usize..];
            let status = inflate
                .decompress_vec(rest, &mut raw, FlushDecompress::None)
                .map_err(|error| DataError::BadZlib(error.to_string()))?;
            if raw.len() > DECOMPRESSED_SIZE_MAX {
                return Err(DataError::TooLarge);
            }
            if status == Status::StreamEnd {
                return Ok(raw);
            }
            if raw.len() == raw.capacity() {
                // Doubling, but never much past the limit.
                raw.reserve(raw.len().min(DECOMPRESSED_SIZE_MAX + 1 - raw.len()).max(1));
            } else if inflate.total_in() == read && inflate.total_out() == written {
                return Err(DataError::BadZlib("truncated stream".into()));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_is_compressed_and_unpacks() {
        let raw = Bytes::from(vec![b'x'; 100]);
        let packed = pack(raw.clone(), true);
        assert_eq!(packed.compression, COMPRESSION_ZLIB);
        assert!(packed.data.len() < raw.len());
        assert_eq!(packed.checksum, checksum(&packed.data));
        assert_eq!(unpack(&packed).unwrap(), raw);
    }

    #[test]
    fn the_reused_zlib_states_give_the_same_results_every_time() {
        // Large, small, then large again: no state leaks between objects,
        // and an output much larger than its input grows the buffer.
        let large = Bytes::from((0..200_000u32).map(|i| (i % 7) as u8).collect::<Vec<u8>>());
        let small = Bytes::from(vec![b'y'; 50]);
        let first = pack(large.clone(), true);
        assert_eq!(pack(small.clone(), true).compression, COMPRESSION_ZLIB);
        assert_eq!(pack(large.clone(), true), first);
        assert_eq!(unpack(&first).unwrap(), large);
        assert_eq!(unpack(&pack(small.clone(), true)).unwrap(), small);
        // A stream cut short is an error, not a short object.
        let cut = first.data.slice(..first.data.len() / 2);
        let truncated = ObjectData {
            compression: COMPRESSION_ZLIB,
            checksum: checksum(&cut),
            data: cut,
        };
        assert!(matches!(unpack(&truncated), Err(DataError::BadZlib(_))));
        assert_eq!(unpack(&first).unwrap(), large);
    }

    #[test]
    fn incompressible_or_disabled_stays_raw() {
        let raw = Bytes::from_static(b"hello");
        assert_eq!(pack(raw.clone(), true).compression, COMPRESSION_NONE);
        let repetitive = Bytes::from(vec![0u8; 1000]);
        let packed = pack(repetitive.clone(), false);
        assert_eq!(packed.compression, COMPRESSION_NONE);
        assert_eq!(packed.data, repetitive);
    }

    #[test]
    fn checksum_is_sha1_of_transmitted_bytes() {
        // protocol.md §14.3: SHA-1("hello").
        assert_eq!(
            checksum(b"hello").to_string(),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
    }

    #[test]
    fn neo_py_zlib_data_unpacks() {
        // zlib.compress(b"x" * 100), as NEO/py's client sends it (§14.4).
        let data = Bytes::from_static(&[
            0x78, 0x9c, 0xab, 0xa8, 0xa0, 0x3d, 0x00, 0x00, 0x40, 0x1b, 0x2e, 0xe1,
        ]);
        let packed = ObjectData {
            compression: COMPRESSION_ZLIB,
            checksum: checksum(&data),
            data,
        };
        assert_eq!(unpack(&packed).unwrap(), vec![b'x'; 100]);
    }

    #[test]
    fn bad_data_is_refused() {
        let mut packed = pack(Bytes::from_static(b"hello"), false);
        packed.checksum = Checksum([1; 20]);
        assert!(matches!(
            verify(&packed),
            Err(DataError::ChecksumMismatch { .. })
        ));
        packed.compression = 2;
        assert_eq!(verify(&packed), Err(DataError::UnknownCompression(2)));
        let garbage = Bytes::from_static(b"not zlib");
        let bad_zlib = ObjectData {
            compression: COMPRESSION_ZLIB,
            checksum: checksum(&garbage),
            data: garbage,
        };
        assert!(matches!(unpack(&bad_zlib), Err(DataError::BadZlib(_))));
        assert_eq!(verify(&no_data()), Ok(()));
    }

    #[test]
    fn zlib_bombs_are_bounded() {
        let raw = vec![0u8; DECOMPRESSED_SIZE_MAX + 1];
        let packed = pack(raw.into(), true);
        assert!(packed.data.len() < 1 << 20);
        assert_eq!(unpack(&packed), Err(DataError::TooLarge));
    }
}
