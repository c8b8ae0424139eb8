//! Split GGUF models (`name-00001-of-00003.gguf`, as written by llama.cpp's `gguf-split`).
//!
//! Each part is a complete GGUF file holding some of the tensors; the first also holds the
//! metadata. Hearth sees the parts as one source, laid back to back, and merges their headers
//! into one [`Gguf`] whose tensor offsets point into that concatenation.

use crate::header::{Gguf, MetadataValue};
use crate::source::{ByteSource, SourceError, read_header};
use crate::{GgufError, Result};
use std::collections::HashSet;

/// The bytes `[start, start + len)` of another source, seen as a source of their own.
pub struct Window<'a, S> {
    inner: &'a S,
    start: u64,
    len: u64,
}

impl<'a, S: ByteSource> Window<'a, S> {
    pub fn new(inner: &'a S, start: u64, len: u64) -> Self {
        Window { inner, start, len }
    }
}

impl<S: ByteSource> ByteSource for Window<'_, S> {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(SourceError(format!(
                "read of {} bytes at {offset} is past the end of a {}-byte part",
                buf.len(),
                self.len
            )));
        }
        self.inner.read_at(self.start + offset, buf).await
    }
}

/// Reads the header of a model whose parts, `part_lens` bytes each, lie back to back in
/// `source` (one part: an ordinary GGUF file).
pub async fn read_split_header<S: ByteSource>(source: &S, part_lens: &[u64]) -> Result<Gguf> {
    let total: u64 = part_lens.iter().sum();
    if part_lens.is_empty() || total != source.len() {
        return Err(GgufError::Corrupt(format!(
            "the parts' lengths add up to {total} bytes but the source holds {}",
            source.len()
        )));
    }
    if part_lens.len() == 1 {
        return read_header(source).await;
    }
    let mut start = 0;
    let mut parts = Vec::with_capacity(part_lens.len());
    for &len in part_lens {
        parts.push((start, read_header(&Window::new(source, start, len)).await?));
        start += len;
    }
    merge_split_headers(parts)
}

fn split_key(gguf: &Gguf, key: &str) -> Option<u64> {
    gguf.get(key).and_then(MetadataValue::as_u64)
}

/// Merges the headers of the parts of a split model, each given with the offset where its
/// part starts in the concatenation.
pub fn merge_split_headers(parts: Vec<(u64, Gguf)>) -> Result<Gguf> {
    let n = parts.len() as u64;
    let bad = |reason: String| GgufError::Corrupt(format!("split model: {reason}"));
    let mut merged: Option<Gguf> = None;
    let mut names = HashSet::new();
    for (i, (start, mut part)) in parts.into_iter().enumerate() {
        let count = split_key(&part, "split.count").ok_or_else(|| {
            bad(format!(
                "part {} has no 'split.count'; it is not part of a split model",
                i + 1
            ))
        })?;
        let no = split_key(&part, "split.no")
            .ok_or_else(|| bad(format!("part {} has no 'split.no'", i + 1)))?;
        if count != n || no != i as u64 {
            return Err(bad(format!(
                "part {} says it is part {} of {count}, but {n} parts were given in order",
                i + 1,
                no + 1
            )));
        }
        for t in &part.tensors {
            if !names.insert(t.name.clone()) {
                return Err(bad(format!(
                    "tensor '{}' appears in more than one part",
                    t.name
                )));
            }
        }
        for t in &mut part.tensors {
            t.offset += start;
        }
        match &mut merged {
            None => merged = Some(part),
            Some(m) => {
                m.tensors.append(&mut part.tensors);
                m.file_len = start + part.file_len;
            }
        }
    }
    let merged = merged.ok_or_else(|| bad("no parts".into()))?;
    let expected = split_key(&merged, "split.tensors.count")
        .ok_or_else(|| bad("the first part has no 'split.tensors.count'".into()))?;
    if expected != merged.tensors.len() as u64 {
        return Err(bad(format!(
            "the parts hold {} tensors but the first part announces {expected}",
            merged.tensors.len()
        )));
    }
    Ok(merged)
}

/// For `…-00001-of-00003.gguf`, the names of all three parts; `None` for an unsplit name.
pub fn split_part_names(name: &str) -> Option<Vec<String>> {
    let stem = name.strip_suffix(".gguf")?;
    let (head, count) = stem.rsplit_once("-of-")?;
    let (prefix, index) = head.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(count) || !digits(index) {
        return None;
    }
    let count: u32 = count.parse().ok()?;
    if count == 0 {
        return None;
    }
    Some(
        (1..=count)
            .map(|i| format!("{prefix}-{i:05}-of-{count:05}.gguf"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_follow_the_first_part() {
        let names = split_part_names("Phi-4-Q8_0-00001-of-00003.gguf").unwrap();
        assert_eq!(
            names,
            [
                "Phi-4-Q8_0-00001-of-00003.gguf",
                "Phi-4-Q8_0-00002-of-00003.gguf",
                "Phi-4-Q8_0-00003-of-00003.gguf"
            ]
        );
        for unsplit in [
            "phi-4.gguf",
            "x-1-of-3.gguf",
            "x-00001-of-00000.gguf",
            "x-00001-of-00003.bin",
        ] {
            assert_eq!(split_part_names(unsplit), None, "{unsplit}");
        }
    }
}
