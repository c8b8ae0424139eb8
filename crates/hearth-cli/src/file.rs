//! A model file on disk as a [`ByteSource`]: positioned reads, nothing held in memory.

use hearth_gguf::{ByteSource, SourceError};
use std::fs::File;
use std::path::Path;

pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let meta = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a file", path.display()));
        }
        Ok(FileSource { file, len: meta.len() })
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.read_exact_at(buf, offset).map_err(|e| SourceError(format!("reading {} bytes at offset {offset}: {e}", buf.len())))
        }
        #[cfg(windows)]
        {
            use std::os::windows::fs::FileExt;
            let mut done = 0;
            while done < buf.len() {
                match self.file.seek_read(&mut buf[done..], offset + done as u64) {
                    Ok(0) => return Err(SourceError(format!("unexpected end of file at offset {}", offset + done as u64))),
                    Ok(n) => done += n,
                    Err(e) => return Err(SourceError(format!("reading at offset {offset}: {e}"))),
                }
            }
            Ok(())
        }
    }
}
