//! A model on disk as a [`ByteSource`]: positioned reads, nothing held in memory. A split
//! model (`…-00001-of-00003.gguf`) is opened as all of its parts, back to back.

use hearth_gguf::split::split_part_names;
use hearth_gguf::{ByteSource, SourceError};
use std::fs::File;
use std::path::Path;

struct Part {
    file: File,
    start: u64,
    len: u64,
}

pub struct FileSource {
    parts: Vec<Part>,
    len: u64,
    /// Time spent in reads so far, in nanoseconds (a load's profile).
    read_nanos: std::sync::atomic::AtomicU64,
}

fn open_part(path: &Path) -> Result<(File, u64), String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    Ok((file, meta.len()))
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self, String> {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let paths = match split_part_names(file_name) {
            Some(names) => names.into_iter().map(|n| path.with_file_name(n)).collect(),
            None => vec![path.to_path_buf()],
        };
        let mut parts = Vec::with_capacity(paths.len());
        let mut len = 0;
        for p in &paths {
            let (file, part_len) = open_part(p)?;
            parts.push(Part {
                file,
                start: len,
                len: part_len,
            });
            len += part_len;
        }
        Ok(FileSource {
            parts,
            len,
            read_nanos: Default::default(),
        })
    }

    /// Byte length of each part (one entry for an unsplit model).
    pub fn part_lens(&self) -> Vec<u64> {
        self.parts.iter().map(|p| p.len).collect()
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match file.seek_read(&mut buf[done..], offset + done as u64)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let started = std::time::Instant::now();
        let read = self.read_parts(offset, buf);
        let nanos = started.elapsed().as_nanos() as u64;
        self.read_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        read
    }
}

impl FileSource {
    /// Seconds spent reading so far.
    pub fn read_seconds(&self) -> f64 {
        self.read_nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    }

    fn read_parts(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let part = self
                .parts
                .iter()
                .find(|p| at >= p.start && at < p.start + p.len)
                .ok_or_else(|| {
                    SourceError(format!(
                        "read at offset {at} is past the end of the model ({} bytes)",
                        self.len
                    ))
                })?;
            let n = ((part.start + part.len - at) as usize).min(buf.len() - done);
            read_exact_at(&part.file, &mut buf[done..done + n], at - part.start)
                .map_err(|e| SourceError(format!("reading {n} bytes at offset {at}: {e}")))?;
            done += n;
        }
        Ok(())
    }
}
