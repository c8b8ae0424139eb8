//! Random-access byte sources: where a model's bytes come from.
//!
//! The engine never needs the whole file in memory: it reads the header, then each tensor (or
//! a row range of it) as it uploads. A source is async so that the browser can back it with
//! IndexedDB or HTTP range requests; native code wraps a file.

use crate::header::{Gguf, parse_header};
use crate::{GgufError, Result};

/// Failure of the underlying storage, described for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A read-only, random-access view of a model file.
#[allow(async_fn_in_trait)] // sources are used generically, never as trait objects
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads exactly `buf.len()` bytes at `offset`. Callers stay inside `len()`.
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;
}

/// An in-memory source (tests, small files, fuzzing).
pub struct SliceSource<'a>(pub &'a [u8]);

impl ByteSource for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let start =
            usize::try_from(offset).map_err(|_| SourceError("offset out of range".into()))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or_else(|| {
                SourceError(format!(
                    "read of {} bytes at {offset} is past the end ({} bytes)",
                    buf.len(),
                    self.0.len()
                ))
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The first read covers typical headers of small models; larger vocabularies take a few
/// doublings (Phi-4-mini's header is ~8 MB). Small, because in the browser every byte read
/// before the model is accepted may be a byte downloaded for nothing.
const FIRST_READ: u64 = 256 << 10;
/// No real header comes near this; a file claiming one is refused rather than read.
pub const MAX_HEADER_BYTES: u64 = 256 << 20;

/// Reads and parses the header, fetching a growing prefix until the header fits. Each step
/// reads only the bytes it adds.
pub async fn read_header<S: ByteSource>(source: &S) -> Result<Gguf> {
    let file_len = source.len();
    let mut prefix = Vec::new();
    let mut want = FIRST_READ.min(file_len);
    loop {
        let have = prefix.len();
        prefix.resize(want as usize, 0);
        source.read_at(have as u64, &mut prefix[have..]).await?;
        match parse_header(&prefix, file_len) {
            Err(GgufError::NeedMore { .. }) => {
                if want >= MAX_HEADER_BYTES {
                    return Err(GgufError::HeaderTooLarge {
                        limit: MAX_HEADER_BYTES,
                    });
                }
                want = (want * 2).min(file_len).min(MAX_HEADER_BYTES);
            }
            other => return other,
        }
    }
}
