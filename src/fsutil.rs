//! Writing a user's file without ever leaving it half-written or clobbering a concurrent edit.

use std::io::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path`'s content with `new`, atomically (a temporary file in the same directory,
/// flushed, then renamed over it), but only if the file still holds `expected`: an edit made
/// since it was read is never overwritten.
pub fn replace_file(path: &Path, expected: &[u8], new: &[u8]) -> Result<()> {
    let current = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    if current != expected {
        return Err(Error::user_with_help(
            format!(
                "`{}` changed while spec-exec was working on it",
                path.display()
            ),
            "nothing was written; run the command again",
        ));
    }
    // Through a symbolic link, the file it leads to is replaced; the link stays a link.
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let target = resolved.as_path();
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.spec-exec-{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(new)?;
        if let Ok(meta) = std::fs::metadata(target) {
            file.set_permissions(meta.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, target)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", path, e)
    })
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch (civil-from-days, proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linked_file_is_replaced_through_its_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.md");
        let link = dir.path().join("link.md");
        std::fs::write(&real, "- [ ] 1. A\n").unwrap();
        std::os::unix::fs::symlink("real.md", &link).unwrap();
        replace_file(&link, b"- [ ] 1. A\n", b"- [x] 1. A\n").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "- [x] 1. A\n");
    }

    #[test]
    fn formats_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_583_045), "2026-11-25T05:04:05Z");
    }

    #[test]
    fn refuses_to_overwrite_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        std::fs::write(&path, "a").unwrap();
        assert!(replace_file(&path, b"b", b"c").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"a");
        replace_file(&path, b"a", b"c").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"c");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
