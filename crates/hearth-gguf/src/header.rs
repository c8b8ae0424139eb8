//! GGUF header parsing: magic, version, metadata key/values, tensor infos.
//!
//! The parser works on a byte *prefix* of the file plus the file's total length. When the
//! prefix ends before the header does it returns [`GgufError::NeedMore`] and the caller reads
//! more; when the *file* ends first it returns [`GgufError::Truncated`]. No allocation is
//! sized by a header field before the bytes behind it are known to exist.

use crate::types::GgmlType;
use crate::{GgufError, Result};
use std::collections::BTreeMap;

const MAGIC: [u8; 4] = *b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: usize = 4;
/// Arrays nested deeper than this are not used by any model and only serve to exhaust the stack.
const MAX_ARRAY_DEPTH: u32 = 2;

/// A metadata value. Arrays keep their element type so that an empty array is still typed.
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetadataValue>),
}

impl MetadataValue {
    /// Any integer value that fits a u64 (GGUF writers disagree on integer widths).
    pub fn as_u64(&self) -> Option<u64> {
        use MetadataValue::*;
        match *self {
            U8(v) => Some(v.into()),
            U16(v) => Some(v.into()),
            U32(v) => Some(v.into()),
            U64(v) => Some(v),
            I8(v) => u64::try_from(v).ok(),
            I16(v) => u64::try_from(v).ok(),
            I32(v) => u64::try_from(v).ok(),
            I64(v) => u64::try_from(v).ok(),
            Bool(v) => Some(v.into()),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        use MetadataValue::*;
        match *self {
            I8(v) => Some(v.into()),
            I16(v) => Some(v.into()),
            I32(v) => Some(v.into()),
            I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(b) => Some(b),
            _ => self.as_u64().map(|v| v != 0),
        }
    }

    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short human description (arrays by length), for `hearth inspect`.
    pub fn summary(&self) -> String {
        match self {
            MetadataValue::String(s) if s.chars().count() > 60 => {
                format!(
                    "{:?}… ({} bytes)",
                    s.chars().take(60).collect::<String>(),
                    s.len()
                )
            }
            MetadataValue::String(s) => format!("{s:?}"),
            MetadataValue::Array(a) => format!("[{} items]", a.len()),
            MetadataValue::F32(v) => format!("{v}"),
            MetadataValue::F64(v) => format!("{v}"),
            MetadataValue::Bool(v) => format!("{v}"),
            other => other.as_i64().map(|v| v.to_string()).unwrap_or_default(),
        }
    }
}

/// One tensor's description. `offset` is absolute in the file and already checked to lie
/// inside it, aligned, and `n_bytes` long.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (innermost) dimension, e.g. the input width of
    /// a weight matrix; `dims[1]` its rows.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub offset: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// (rows, columns) when viewed as a matrix: columns are `dims[0]`, rows are the rest.
    pub fn matrix_shape(&self) -> (u64, u64) {
        let cols = self.dims.first().copied().unwrap_or(1);
        (self.n_elements() / cols.max(1), cols)
    }
}

/// A parsed GGUF header.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, MetadataValue>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
    pub file_len: u64,
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// `general.architecture`, the prefix of most other keys.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture")
            .and_then(MetadataValue::as_str)
    }
}

/// A read cursor over the prefix; knows the file length to tell "need more" from "truncated".
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file_len: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let end = (self.pos as u64)
            .checked_add(n)
            .ok_or_else(|| GgufError::Corrupt(format!("{} has an impossible length", what())))?;
        if end > self.file_len {
            return Err(GgufError::Truncated {
                what: what(),
                needed: end,
                file_len: self.file_len,
            });
        }
        if end > self.bytes.len() as u64 {
            return Err(GgufError::NeedMore {
                have: self.bytes.len() as u64,
            });
        }
        let slice = &self.bytes[self.pos..end as usize];
        self.pos = end as usize;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        Ok(self
            .take(N as u64, what)?
            .try_into()
            .expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Bytes left in the whole file after the cursor: the bound for any count read here.
    fn remaining_in_file(&self) -> u64 {
        self.file_len - self.pos as u64
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        if len > self.remaining_in_file() {
            return Err(GgufError::Corrupt(format!(
                "{} claims a {len}-byte string but only {} bytes follow",
                what(),
                self.remaining_in_file()
            )));
        }
        let bytes = self.take(len, what)?;
        // Vocabularies occasionally carry invalid UTF-8 (partial byte tokens); keep them readable.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(
        &mut self,
        type_id: u32,
        depth: u32,
        what: &dyn Fn() -> String,
    ) -> Result<MetadataValue> {
        use MetadataValue as V;
        Ok(match type_id {
            0 => V::U8(self.array::<1>(what)?[0]),
            1 => V::I8(self.array::<1>(what)?[0] as i8),
            2 => V::U16(u16::from_le_bytes(self.array(what)?)),
            3 => V::I16(i16::from_le_bytes(self.array(what)?)),
            4 => V::U32(self.u32(what)?),
            5 => V::I32(i32::from_le_bytes(self.array(what)?)),
            6 => V::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => V::Bool(false),
                1 => V::Bool(true),
                b => {
                    return Err(GgufError::Corrupt(format!(
                        "{} has boolean byte {b}",
                        what()
                    )));
                }
            },
            8 => V::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::Corrupt(format!(
                        "{} nests arrays deeper than {MAX_ARRAY_DEPTH}",
                        what()
                    )));
                }
                let elem_type = self.u32(what)?;
                let count = self.u64(what)?;
                let min_size = min_value_size(elem_type).ok_or_else(|| {
                    GgufError::Corrupt(format!(
                        "{} has unknown array element type {elem_type}",
                        what()
                    ))
                })?;
                if count.saturating_mul(min_size) > self.remaining_in_file() {
                    return Err(GgufError::Corrupt(format!(
                        "{} claims {count} array items but only {} bytes follow",
                        what(),
                        self.remaining_in_file()
                    )));
                }
                // Capacity is bounded by the check above: every item consumes at least one byte.
                let mut items = Vec::with_capacity(count.min(self.bytes.len() as u64) as usize);
                for _ in 0..count {
                    items.push(self.value(elem_type, depth + 1, what)?);
                }
                V::Array(items)
            }
            10 => V::U64(self.u64(what)?),
            11 => V::I64(i64::from_le_bytes(self.array(what)?)),
            12 => V::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(GgufError::Corrupt(format!(
                    "{} has unknown value type {other}",
                    what()
                )));
            }
        })
    }
}

/// The fewest bytes one value of a type can take (strings: the length field alone).
fn min_value_size(type_id: u32) -> Option<u64> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

/// Parses the header from `prefix`, the first bytes of a file that is `file_len` bytes long.
pub fn parse_header(prefix: &[u8], file_len: u64) -> Result<Gguf> {
    let mut c = Cursor {
        bytes: prefix,
        pos: 0,
        file_len,
    };
    let magic: [u8; 4] = c.array(&|| "the magic number".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = c.u32(&|| "the version".into())?;
    if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
        return Err(GgufError::BigEndian);
    }
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let n_tensors = c.u64(&|| "the tensor count".into())?;
    let n_kv = c.u64(&|| "the metadata count".into())?;
    // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
    // 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    if n_kv.saturating_mul(13) > c.remaining_in_file() {
        return Err(GgufError::Corrupt(format!(
            "the header claims {n_kv} metadata entries, more than the file can hold"
        )));
    }
    if n_tensors.saturating_mul(32) > c.remaining_in_file() {
        return Err(GgufError::Corrupt(format!(
            "the header claims {n_tensors} tensors, more than the file can hold"
        )));
    }

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let type_id = c.u32(&|| format!("the type of metadata key '{key}'"))?;
        let value = c.value(type_id, 0, &|| format!("metadata key '{key}'"))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(GgufError::BadMetadata {
                key,
                reason: "appears twice".into(),
            });
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
            _ => {
                return Err(GgufError::BadMetadata {
                    key: "general.alignment".into(),
                    reason: format!("{} is not a power of two up to 1 MiB", v.summary()),
                });
            }
        },
    };

    struct Raw {
        name: String,
        dims: Vec<u64>,
        ty: GgmlType,
        rel_offset: u64,
    }
    let mut raws: Vec<Raw> = Vec::new();
    for i in 0..n_tensors {
        let name = c.string(&|| format!("the name of tensor #{i}"))?;
        let bad = |reason: String| GgufError::BadTensor {
            name: name.clone(),
            reason,
        };
        let n_dims = c.u32(&|| format!("the rank of tensor '{name}'"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!(
                "has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            let d = c.u64(&|| format!("the shape of tensor '{name}'"))?;
            if d == 0 || d > i64::MAX as u64 {
                return Err(bad(format!("has dimension {d}")));
            }
            dims.push(d);
        }
        let type_id = c.u32(&|| format!("the type of tensor '{name}'"))?;
        let ty = GgmlType::from_id(type_id)
            .ok_or_else(|| bad(format!("has unknown type id {type_id}")))?;
        let rel_offset = c.u64(&|| format!("the offset of tensor '{name}'"))?;
        if raws.iter().any(|r| r.name == name) {
            return Err(bad("appears twice".into()));
        }
        raws.push(Raw {
            name,
            dims,
            ty,
            rel_offset,
        });
    }

    let data_offset = (c.pos as u64).next_multiple_of(alignment);
    if data_offset > file_len {
        return Err(GgufError::Truncated {
            what: "the tensor data section".into(),
            needed: data_offset,
            file_len,
        });
    }
    let data_len = file_len - data_offset;
    let mut tensors = Vec::with_capacity(raws.len());
    for Raw {
        name,
        dims,
        ty,
        rel_offset,
    } in raws
    {
        let bad = |reason: String| GgufError::BadTensor {
            name: name.clone(),
            reason,
        };
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
        if dims[0] % ty.block_size() as u64 != 0 {
            return Err(bad(format!(
                "row length {} is not a multiple of the {ty} block size {}",
                dims[0],
                ty.block_size()
            )));
        }
        let n_bytes = ty
            .bytes_for(n_elements)
            .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
        if rel_offset % alignment != 0 {
            return Err(bad(format!(
                "offset {rel_offset} is not aligned to {alignment}"
            )));
        }
        let end = rel_offset.checked_add(n_bytes).filter(|&e| e <= data_len);
        if end.is_none() {
            return Err(GgufError::Truncated {
                what: format!("tensor '{name}' ({n_bytes} bytes at data offset {rel_offset})"),
                needed: data_offset
                    .saturating_add(rel_offset)
                    .saturating_add(n_bytes),
                file_len,
            });
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset: data_offset + rel_offset,
            n_bytes,
        });
    }
    Ok(Gguf {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        file_len,
    })
}
