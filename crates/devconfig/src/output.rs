//! Writing a configuration that may hold a key: private from its first byte on.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::DevConfigError;

/// Writes `text` to `path` with mode 0600: a fresh file next to it (created 0600, so the key is
/// never readable by others, not even briefly), then renamed over `path`.
pub fn write_private(path: &Path, text: &str) -> Result<(), DevConfigError> {
    let err = |source| DevConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        // created 0600 and removed again if anything below fails
        let mut tmp = tempfile::Builder::new()
            .prefix(".devconfig.")
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)?;
        // The umask may only remove bits; make sure nothing else is set either.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_0600_also_over_an_existing_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("swanctl.conf");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let e = write_private(Path::new("/nonexistent-dir-hn/x.conf"), "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent-dir-hn/x.conf"), "{e}");
    }
}
