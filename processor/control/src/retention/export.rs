//! Cold-storage copies of what retention removes: one gzip file per archived month or
//! DLQ, and a `SHA256SUMS` manifest that `sha256sum -c` checks.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// A file being written: compressed, its compressed bytes hashed and counted.
pub(crate) struct ExportFile {
    name: String,
    gz: GzEncoder<Hashing>,
}

/// What reached the disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    /// The file's name inside the export directory.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

struct Hashing {
    file: File,
    hash: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl ExportFile {
    /// Creates `dir/name` (refusing to overwrite an earlier export of the same name).
    pub(crate) fn create(dir: &Path, name: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))?;
        Ok(Self {
            name: name.to_string(),
            gz: GzEncoder::new(
                Hashing {
                    file,
                    hash: Sha256::new(),
                    bytes: 0,
                },
                Compression::default(),
            ),
        })
    }

    /// The uncompressed side, to write rows into.
    pub(crate) fn writer(&mut self) -> &mut (dyn Write + Send) {
        &mut self.gz
    }

    /// Finishes the file, syncs it to disk and adds it to `dir/SHA256SUMS`.
    pub(crate) fn finish(self, dir: &Path) -> io::Result<Exported> {
        let inner = self.gz.finish()?;
        inner.file.sync_all()?;
        let sha256: String = inner
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut manifest = OpenOptions::new()
            .append(true)
            .create(true)
            .open(manifest(dir))?;
        writeln!(manifest, "{sha256}  {}", self.name)?;
        manifest.sync_all()?;
        Ok(Exported {
            file: self.name,
            sha256,
            bytes: inner.bytes,
        })
    }
}

fn manifest(dir: &Path) -> PathBuf {
    dir.join("SHA256SUMS")
}
