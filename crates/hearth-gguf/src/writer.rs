//! A GGUF v3 writer: metadata, a tensor table, then tensor data produced one tensor at a time
//! (so multi-gigabyte synthetic models never sit in memory whole).

use crate::header::MetadataValue;
use crate::types::GgmlType;
use std::io::{self, Write};

const ALIGNMENT: u64 = 32;

pub struct TensorSpec {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

impl TensorSpec {
    pub fn n_bytes(&self) -> u64 {
        self.ty
            .bytes_for(self.dims.iter().product())
            .expect("whole blocks")
    }
}

#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorSpec>,
}

fn value_type(v: &MetadataValue) -> u32 {
    use MetadataValue::*;
    match v {
        U8(_) => 0,
        I8(_) => 1,
        U16(_) => 2,
        I16(_) => 3,
        U32(_) => 4,
        I32(_) => 5,
        F32(_) => 6,
        Bool(_) => 7,
        String(_) => 8,
        Array(_) => 9,
        U64(_) => 10,
        I64(_) => 11,
        F64(_) => 12,
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &MetadataValue) {
    use MetadataValue::*;
    match v {
        U8(x) => out.push(*x),
        I8(x) => out.push(*x as u8),
        U16(x) => out.extend(x.to_le_bytes()),
        I16(x) => out.extend(x.to_le_bytes()),
        U32(x) => out.extend(x.to_le_bytes()),
        I32(x) => out.extend(x.to_le_bytes()),
        F32(x) => out.extend(x.to_le_bytes()),
        Bool(x) => out.push(*x as u8),
        String(s) => put_string(out, s),
        U64(x) => out.extend(x.to_le_bytes()),
        I64(x) => out.extend(x.to_le_bytes()),
        F64(x) => out.extend(x.to_le_bytes()),
        Array(items) => {
            // Empty arrays are written as arrays of u32.
            out.extend(items.first().map_or(4, value_type).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
    }
}

impl GgufWriter {
    pub fn meta(&mut self, key: &str, value: MetadataValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> &mut Self {
        self.tensors.push(TensorSpec {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
        });
        self
    }

    /// Total file size once written.
    pub fn file_len(&self) -> u64 {
        let header = self.header_bytes().len() as u64;
        self.tensors
            .iter()
            .fold(header, |at, t| at + t.n_bytes().next_multiple_of(ALIGNMENT))
    }

    fn header_bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_string(&mut out, k);
            out.extend(value_type(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            let id = (0..64)
                .find(|&i| GgmlType::from_id(i) == Some(t.ty))
                .expect("every type has an id");
            out.extend(id.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset = (offset + t.n_bytes()).next_multiple_of(ALIGNMENT);
        }
        out.resize(out.len().next_multiple_of(ALIGNMENT as usize), 0);
        out
    }

    /// Writes the file; `fill` produces each tensor's raw bytes in table order.
    pub fn write<W: Write>(
        &self,
        out: &mut W,
        mut fill: impl FnMut(&TensorSpec, &mut [u8]),
    ) -> io::Result<()> {
        out.write_all(&self.header_bytes())?;
        let mut buf = Vec::new();
        for t in &self.tensors {
            let n = t.n_bytes() as usize;
            buf.clear();
            buf.resize(n.next_multiple_of(ALIGNMENT as usize), 0);
            fill(t, &mut buf[..n]);
            out.write_all(&buf)?;
        }
        Ok(())
    }
}
