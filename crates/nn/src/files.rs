//! Output files that survive a kill at any moment and never overwrite each other: atomic
//! writes (a temporary file of a unique name beside the target, fsync, rename, fsync of the
//! folder), a lock that refuses a second writer of the same checkpoint, and a check, before a
//! run starts, that its outputs are distinct and writable.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_core::{Error, Result};

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { context: path.display().to_string(), source }
}

/// The folder a file lives in (`.` for a bare name).
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A temporary name beside `path` that no other writer uses: this process, a counter and the
/// clock, hidden, and never the target's own name whatever its extension.
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let unique = format!(".{name}.{}.{}.{nanos}.partial", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    folder(path).join(unique)
}

/// Writes `bytes` to `path` so that a reader, or a run killed at any moment, sees either the
/// old file or the new one, whole: a temporary file beside it, fsync, rename, fsync of the
/// folder. The temporary file is removed if anything fails.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_beside(path);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    sync_folder(folder(path)).map_err(io(path))
}

/// Makes a rename in `dir` durable (where the platform lets a folder be opened and synced).
fn sync_folder(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) { File::open(dir)?.sync_all() } else { Ok(()) }
}

/// Writes `text` (and a final newline) to `path` atomically.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    write_bytes_atomically(path, format!("{text}\n").as_bytes())
}

/// An exclusive lock on a file being written by this process: a lock file beside it
/// (`.<name>.lock`) holding this process's id, locked by the operating system, which frees it
/// when the process ends however it ends. A second run writing the same file is refused.
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    pub fn acquire(path: &Path) -> Result<Self> {
        let name = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let lock_path = folder(path).join(format!(".{name}.lock"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() { "another process".into() } else { format!("process {holder}") };
                return Err(Error::data(
                    path.display().to_string(),
                    format!(
                        "is being written by {holder} (lock file {}): let that run finish or stop it, or choose another path",
                        lock_path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        file.set_len(0).and_then(|_| write!(file, "{}", std::process::id())).map_err(io(&lock_path))?;
        remove_stale_partials(path);
        Ok(WriterLock { _file: file })
    }
}

/// Removes the temporary files earlier writers of `path` left when they were killed: with its
/// lock held, no other writer is using them.
fn remove_stale_partials(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
    let prefix = format!(".{name}.");
    for entry in std::fs::read_dir(folder(path)).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".partial") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// An output of a run: a file, or a folder it fills with files named by `names`.
pub enum Output<'a> {
    File { option: &'a str, path: &'a Path },
    Folder { option: &'a str, path: &'a Path, names: Vec<String> },
}

/// Refuses outputs that would overwrite each other (the same file named twice, or a file
/// among those a folder receives), and checks that each can be written, creating folders as
/// needed: a run should fail before it starts, not after its first epoch.
pub fn check_outputs(outputs: &[Output<'_>]) -> Result<()> {
    for output in outputs {
        if let Output::Folder { path, .. } = output {
            std::fs::create_dir_all(path).map_err(io(path))?;
        }
    }
    let mut claimed: Vec<(PathBuf, &str)> = Vec::new();
    for output in outputs {
        let (option, files) = match output {
            Output::File { option, path } => (*option, vec![normalised(path)?]),
            Output::Folder { option, path, names } => {
                let dir = normalised(&path.join("x"))?.parent().map(Path::to_path_buf).unwrap_or_default();
                (*option, names.iter().map(|n| dir.join(n)).collect())
            }
        };
        for file in files {
            if let Some((_, other)) = claimed.iter().find(|(p, _)| *p == file) {
                return Err(Error::data(
                    option,
                    format!("would write {} which {other} also writes: give each output its own path", file.display()),
                ));
            }
            check_writable(&file)?;
            claimed.push((file, option));
        }
    }
    Ok(())
}

/// `path` with its folder made absolute and free of `.`, `..` and links, so that two
/// spellings of one file compare equal.
fn normalised(path: &Path) -> Result<PathBuf> {
    let dir = folder(path);
    let dir = dir.canonicalize().map_err(|source| Error::Io {
        context: format!("{} (the folder of {})", dir.display(), path.display()),
        source,
    })?;
    let name = path.file_name().ok_or_else(|| Error::data(path.display().to_string(), "names a folder, not a file"))?;
    Ok(dir.join(name))
}

/// Whether a file can be created in `path`'s folder (a probe written and removed), and
/// `path` itself, if it exists, is a file that can be replaced.
fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::data(path.display().to_string(), "is a folder, where a file is to be written"));
    }
    let probe = temporary_beside(path);
    File::create(&probe).map_err(io(path))?;
    std::fs::remove_file(&probe).map_err(io(&probe))
}
