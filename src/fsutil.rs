//! Writing a user's file without ever leaving it half-written or clobbering a concurrent edit.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Replaces `path`'s content with `new`, atomically (a temporary file in the same directory,
/// flushed, then renamed over it), but only if the file still holds `expected`: an edit made
/// since it was read is never overwritten.
///
/// The temporary file is `.<name>.spec-exec-<pid>-<random>.tmp`: one left by a killed process
/// is recognised, and removed, by [`remove_stale_temps`]. The file is locked (an OS lock, as
/// ticks take it) from the comparison to the rename.
pub fn replace_file(path: &Path, expected: &[u8], new: &[u8]) -> Result<()> {
    // Held until the new file is in place: a tick (which takes the same lock) cannot land
    // between the comparison and the rename, and be lost with the old file.
    let held = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    held.lock().map_err(|e| Error::io("lock", path, e))?;
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
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{}{}-", temp_prefix(&name), std::process::id()))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        tmp.write_all(new)?;
        if let Ok(meta) = std::fs::metadata(target) {
            tmp.as_file().set_permissions(meta.permissions())?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(target).map(drop).map_err(|e| e.error)
    };
    write().map_err(|e| Error::io("write", path, e))
}

/// How the temporary copies of a file named `name` start; the writer's pid follows.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.spec-exec-")
}

/// Removes the temporary copies of `path` (or of the file a link at `path` leads to) that a
/// spec-exec killed while replacing it left next to it: `.<name>.spec-exec-<pid>.tmp` and
/// `.<name>.spec-exec-<pid>-<random>.tmp`, where no process `<pid>` is alive. Returns what
/// it removed.
pub fn remove_stale_temps(path: &Path) -> Vec<PathBuf> {
    let mut places: Vec<PathBuf> = vec![path.to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(path)
        && real != path
    {
        places.push(real);
    }
    let mut removed = Vec::new();
    for place in places {
        let (Some(dir), Some(name)) = (place.parent(), place.file_name()) else {
            continue;
        };
        let prefix = temp_prefix(&name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix)?.strip_suffix(".tmp"))
                .and_then(|rest| rest.split('-').next()?.parse::<i32>().ok())
            else {
                continue;
            };
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && !process_alive(pid) && std::fs::remove_file(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// Whether a process `pid` exists (this one always does).
fn process_alive(pid: i32) -> bool {
    if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return true;
    }
    rustix::process::Pid::from_raw(pid).is_some_and(|pid| {
        !matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    })
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The bytes of the files (and links, as links) at and under `path`.
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else {
            total += meta.len();
        }
    }
    total
}

/// A size for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.97 KiB shows as 1.0 MiB, not 1024.0 KiB.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
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
    fn formats_the_time_in_utc_to_the_second() {
        let now = utc_now();
        assert_eq!(now.len(), "2026-11-25T05:04:05Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
        assert!(now.as_str() >= "2026-01-01T00:00:00Z", "{now}");
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

    #[test]
    fn removes_only_temporary_copies_whose_writer_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        std::fs::write(&path, "a").unwrap();
        // A process that has ended: its pid is not alive (short of reuse, which the
        // kernel does not do this quickly).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let mine = std::process::id();
        let names = [
            format!(".tasks.md.spec-exec-{gone}.tmp"),
            format!(".tasks.md.spec-exec-{gone}-abc123.tmp"),
            format!(".tasks.md.spec-exec-{mine}.tmp"),
            format!(".other.md.spec-exec-{gone}.tmp"),
            "notes.tmp".to_owned(),
        ];
        for n in &names {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let mut removed = remove_stale_temps(&path);
        removed.sort();
        let mut expected = vec![dir.path().join(&names[0]), dir.path().join(&names[1])];
        expected.sort();
        assert_eq!(removed, expected);
        for n in &names[2..] {
            assert!(dir.path().join(n).exists(), "{n}");
        }
    }
}
