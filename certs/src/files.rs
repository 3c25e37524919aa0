//! Writing certificate and key files so that a crash never leaves a half-written PEM behind.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::CertError;

/// Who may read a file we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Certificates are public; the broker and agents run as other users than `fleet-certs`.
    Public,
    /// Private keys: owner only, from the moment the file exists, not after a later chmod.
    Secret,
}

/// Distinguishes temp files of concurrent writers in one process (several threads issuing).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Refuses to go on if any of `paths` exists, before anything is written, so that a refused
/// `init` or `issue` leaves the directory exactly as it was.
pub(crate) fn refuse_existing<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
) -> Result<(), CertError> {
    for path in paths {
        match fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(CertError::Exists {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CertError::Io {
                    action: "inspect",
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `contents` to `path` via a temp file in the same directory and a rename, so readers
/// (a broker starting up, a second `fleet-certs`) see either the old file or the whole new one.
///
/// No fsync: the demo issues thousands of device certs and an fsync per file would dominate the
/// run time; the rename already protects against an interrupted process, which is the failure
/// that matters for files that can simply be issued again.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], access: Access) -> Result<(), CertError> {
    let tmp = temp_path(path)?;
    let result = write_new(&tmp, contents, access).and_then(|()| {
        fs::rename(&tmp, path).map_err(|source| CertError::Io {
            action: "rename into place",
            path: path.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        // Best effort: the original error is what the user needs to see.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> Result<PathBuf, CertError> {
    let name = path.file_name().ok_or_else(|| CertError::Io {
        action: "write",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

fn write_new(path: &Path, contents: &[u8], access: Access) -> Result<(), CertError> {
    let mut options = OpenOptions::new();
    // create_new: never follow a planted symlink or reuse someone else's file for a key.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match access {
            Access::Public => 0o644,
            Access::Secret => 0o600,
        });
    }
    #[cfg(not(unix))]
    let _ = access;
    let io_err = |source| CertError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(contents).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.pem");
        write_atomic(&path, b"one", Access::Public)?;
        write_atomic(&path, b"two", Access::Public)?;
        assert_eq!(fs::read(&path)?, b"two");
        let names: Vec<_> = fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, vec![std::ffi::OsString::from("x.pem")]);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_are_owner_only() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("k.pem");
        write_atomic(&path, b"secret", Access::Secret)?;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn refuse_existing_names_the_file_and_force() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("there.crt");
        fs::write(&path, "x")?;
        let err = refuse_existing([path.as_path()])
            .err()
            .ok_or("expected a refusal")?;
        let msg = err.to_string();
        assert!(
            msg.contains("there.crt") && msg.contains("--force"),
            "{msg}"
        );
        refuse_existing([dir.path().join("absent.crt").as_path()])?;
        Ok(())
    }
}
