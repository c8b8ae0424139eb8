//! The bytes of a model file: the GGUF container and ggml's quantization blocks.
//!
//! * [`header`] parses a GGUF v2/v3 header from a byte prefix without trusting any field:
//!   every count, length, dimension and offset is checked against the bytes that exist.
//! * [`source`] abstracts "a file" as an async random-access byte source, so the same reader
//!   works on a local file, an HTTP range server or IndexedDB chunks in the browser.
//! * [`split`] merges the parts of a split model (`…-00001-of-00003.gguf`) into one.
//! * [`types`] describes ggml tensor types (block sizes and byte sizes).
//! * [`quant`] dequantizes blocks on the CPU (the reference for the GPU kernels) and repacks
//!   them into the 4-byte-aligned layout the WGSL kernels read.
//! * [`writer`] writes GGUF files (synthetic benchmark models, test inputs).

pub mod header;
pub mod quant;
pub mod source;
pub mod split;
pub mod types;
pub mod writer;

pub use header::{Gguf, MetadataValue, TensorInfo, parse_header};
pub use source::{ByteSource, SliceSource, SourceError, read_header};
pub use split::read_split_header;
pub use types::GgmlType;

/// Everything that can be wrong with a GGUF file, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (the first four bytes are {0:02x?}, expected \"GGUF\")")]
    BadMagic([u8; 4]),
    #[error("this GGUF file is big-endian; only little-endian GGUF files are supported")]
    BigEndian,
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    #[error(
        "the file is truncated: {what} needs bytes up to offset {needed}, but the file has {file_len}"
    )]
    Truncated {
        what: String,
        needed: u64,
        file_len: u64,
    },
    #[error("the GGUF header is larger than {limit} bytes; refusing to read it")]
    HeaderTooLarge { limit: u64 },
    #[error("corrupt GGUF header: {0}")]
    Corrupt(String),
    #[error("tensor '{name}': {reason}")]
    BadTensor { name: String, reason: String },
    #[error("metadata key '{key}': {reason}")]
    BadMetadata { key: String, reason: String },
    #[error("reading the model failed: {0}")]
    Source(#[from] SourceError),
    /// Internal signal of the incremental parser: the prefix it was given ends before the
    /// header does. [`read_header`] answers it by reading a longer prefix.
    #[error("the header continues past the {have} bytes read so far")]
    NeedMore { have: u64 },
}

impl GgufError {
    /// A short, stable name for the kind of error (the JS API's `HearthError.code`).
    pub fn code(&self) -> &'static str {
        match self {
            GgufError::BadMagic(_) => "not-gguf",
            GgufError::BigEndian | GgufError::UnsupportedVersion(_) => "unsupported-model",
            GgufError::Source(_) => "read",
            _ => "bad-model",
        }
    }
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;
