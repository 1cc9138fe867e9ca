//! Surgical edits of tasks.md: ticking a task's box writes exactly one byte, in place, after
//! re-reading the file and finding the task again.
//!
//! No temporary file and no rename: the file is opened, read, the task found, the line
//! checked again just before the write, and the state byte written at its offset, then the
//! file is synced. Whatever the user (or anyone else) writes to the file meanwhile is kept:
//! appended lines, edits to other lines. Ticks are made one at a time by the caller.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use super::model::TaskState;
use crate::error::{Error, Result};
use crate::fsutil;

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticked {
    /// Ids whose box changed: the task, then any container it completed.
    pub ids: Vec<String>,
    /// Temporary copies of tasks.md that a killed spec-exec left next to it, now removed.
    pub removed: Vec<PathBuf>,
}

/// How many times a tick starts over when the file changes under it.
const ATTEMPTS: usize = 20;

/// What a tick writes: the file's mark at each edit's offset, ticking `ids`.
#[derive(Debug)]
struct Writes {
    edits: Vec<Edit>,
    ids: Vec<String>,
    mark: u8,
}

/// One byte to write: the state character at `offset`, on the line `line` of the bytes read.
#[derive(Debug)]
struct Edit {
    offset: usize,
    line: std::ops::Range<usize>,
}

/// Ticks task `id` (and every container it completes) in the file at `path`, in place (see
/// the module's notes). `title` is the title the task had when the run was planned: if the
/// file now says something else, nothing is written. `root` is the workspace root: a
/// tasks.md that leads out of it (a symbolic link put there during the run) is not written.
///
/// With `optional_left_out` (`--skip-optional`), a container is complete once its required
/// sub-tasks are, as Kiro ticks a parent; otherwise its optional sub-tasks count too.
pub fn tick(
    root: &Path,
    path: &Path,
    display: &Path,
    id: &str,
    title: &str,
    optional_left_out: bool,
) -> Result<Ticked> {
    let removed = fsutil::remove_stale_temps(path);
    for _ in 0..ATTEMPTS {
        if let Some(ids) = try_tick(root, path, display, id, title, optional_left_out)? {
            return Ok(Ticked { ids, removed });
        }
    }
    Err(Error::user_with_help(
        format!(
            "`{}` kept changing while task {id} was being ticked; it was not ticked",
            display.display()
        ),
        "tick it by hand once the file is quiet",
    ))
}

/// One attempt: `None` when the file changed under it (the caller starts over).
fn try_tick(
    root: &Path,
    path: &Path,
    display: &Path,
    id: &str,
    title: &str,
    optional_left_out: bool,
) -> Result<Option<Vec<String>>> {
    let io = |action, e| Error::io(action, display, e);
    let file = File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("open", e))?;
    let opened = file.metadata().map_err(|e| io("read", e))?;
    if !opened.is_file() {
        return Err(Error::user(format!(
            "`{}` is no longer a file; task {id} was not ticked",
            display.display()
        )));
    }
    ensure_inside(root, path, display, id)?;
    if !same_file(path, &opened) {
        return Ok(None); // replaced between the open and the check
    }
    let mut bytes = Vec::new();
    (&file).read_to_end(&mut bytes).map_err(|e| io("read", e))?;
    let Some(Writes { edits, ids, mark }) =
        find_edits(&bytes, display, id, title, optional_left_out)?
    else {
        return Ok(Some(Vec::new()));
    };
    // Just before the write, each line is still what was read and parsed: an edit made since
    // (a line inserted above, the task's title changed) means starting over.
    for e in &edits {
        let mut now = vec![0; e.line.len()];
        if file.read_exact_at(&mut now, e.line.start as u64).is_err()
            || now != bytes[e.line.clone()]
        {
            return Ok(None);
        }
    }
    for e in &edits {
        file.write_all_at(&[mark], e.offset as u64)
            .map_err(|e| io("write", e))?;
    }
    file.sync_data().map_err(|e| io("sync", e))?;
    // A file replaced meanwhile (an editor saving by rename) lost the tick with the old copy:
    // tick the new one.
    if !same_file(path, &opened) {
        return Ok(None);
    }
    Ok(Some(ids))
}

/// Refuses a tasks.md that leads out of the workspace (checked at every tick: the file may
/// have been swapped for a link since the run started).
fn ensure_inside(root: &Path, path: &Path, display: &Path, id: &str) -> Result<()> {
    let Some((link, target)) = super::leads_outside(path, root)? else {
        return Ok(());
    };
    Err(Error::user_with_help(
        format!(
            "`{}` now leads outside the workspace (`{}` leads to `{}`); task {id} was not ticked",
            display.display(),
            crate::source::display_path(&link, root).display(),
            target.display()
        ),
        "put tasks.md back as a file inside the workspace, then tick the task by hand",
    ))
}

/// Whether `path` is (still) the file `opened` was read from.
fn same_file(path: &Path, opened: &std::fs::Metadata) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.dev() == opened.dev() && m.ino() == opened.ino())
}

/// The boxes to tick in `bytes` (the task's, then those of the containers it completes), the
/// ids ticked and the file's mark; `None` when there is nothing to tick.
fn find_edits(
    bytes: &[u8],
    display: &Path,
    id: &str,
    title: &str,
    optional_left_out: bool,
) -> Result<Option<Writes>> {
    let list = super::parse_bytes(display.to_path_buf(), bytes.to_vec());
    let Some(index) = list
        .tasks
        .iter()
        .position(|t| t.id == id && !t.is_implied())
    else {
        return Err(Error::user_with_help(
            format!(
                "task {id} is no longer in `{}`; it was not ticked",
                display.display()
            ),
            "restore the task, or tick it by hand",
        ));
    };
    if list.tasks[index].title != title {
        return Err(Error::user_with_help(
            format!(
                "task {id} changed in `{}` during the run (now: {:?}); it was not ticked",
                display.display(),
                list.tasks[index].title
            ),
            "tick it by hand once you have checked it",
        ));
    }
    let mark = if list.upper_x { b'X' } else { b'x' };
    let mut ticked = Vec::new();
    let mut boxes = Vec::new();
    let mut done: Vec<bool> = list
        .tasks
        .iter()
        .map(|t| t.state == TaskState::Done)
        .collect();
    let mut at = Some(index);
    while let Some(i) = at {
        let t = &list.tasks[i];
        let complete = !t.is_container()
            || list
                .leaves_of(i)
                .iter()
                .all(|&l| done[l] || (optional_left_out && list.tasks[l].optional));
        if !complete {
            break;
        }
        if let Some(cb) = t.checkbox
            && t.state != TaskState::Done
        {
            boxes.push((t.id.as_str(), cb));
            ticked.push(t.id.clone());
        }
        // A heading task: every step not yet ticked.
        if t.state != TaskState::Done && !t.steps.is_empty() {
            for cb in t.steps.iter().filter(|cb| !matches!(cb.ch, 'x' | 'X')) {
                boxes.push((t.id.as_str(), *cb));
            }
            ticked.push(t.id.clone());
        }
        done[i] = true;
        at = t.parent;
    }
    if boxes.is_empty() {
        return Ok(None);
    }
    let mut edits = Vec::new();
    for (task, cb) in boxes {
        let offset = cb.byte_offset;
        let start = bytes[..offset]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |n| n + 1);
        let end = bytes[offset..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |n| offset + n);
        if cb.ch.len_utf8() != 1 {
            let loc = list.location(cb.text_offset, 1);
            return Err(Error::user_with_help(
                format!(
                    "{}:{}:{}: the box of task {task} holds `{}` (U+{:04X}), which takes {} bytes; spec-exec ticks a box by writing one byte in place, so task {id} was not ticked",
                    display.display(),
                    loc.line,
                    loc.column,
                    cb.ch,
                    u32::from(cb.ch),
                    cb.ch.len_utf8()
                ),
                "write the box as `[ ]` with a plain space, or tick it by hand",
            ));
        }
        edits.push(Edit {
            offset,
            line: start..end,
        });
    }
    Ok(Some(Writes {
        edits,
        ids: ticked,
        mark,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_one_byte_and_completes_containers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        let text = "# T\r\n\r\n- [ ] 1. One\r\n- [ ] 2. Two\r\n  - [x] 2.1 A\r\n  - [ ] 2.2 B\r\n";
        std::fs::write(&path, text).unwrap();
        let r = tick(dir.path(), &path, Path::new("tasks.md"), "2.2", "B", false).unwrap();
        assert_eq!(r.ids, ["2.2", "2"]);
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            "# T\r\n\r\n- [ ] 1. One\r\n- [x] 2. Two\r\n  - [x] 2.1 A\r\n  - [x] 2.2 B\r\n"
        );
        // Ticking again changes nothing.
        assert!(
            tick(dir.path(), &path, Path::new("tasks.md"), "2.2", "B", false)
                .unwrap()
                .ids
                .is_empty()
        );
        // A changed title is not ticked.
        assert!(tick(dir.path(), &path, Path::new("tasks.md"), "1", "Uno", false).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
    }

    #[test]
    fn a_heading_task_ticks_all_its_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        let text = "## Prerequisites\n- [ ] Read the design\n\n#### Task 1.1: Set up\n- [ ] Create the service\n- [x] Declare it\n- _Requirements: 1.1_\n\n#### Task 1.2: Wire up\n- [ ] Bind it\n";
        std::fs::write(&path, text).unwrap();
        let list = crate::spec::parse_bytes("tasks.md", text.as_bytes().to_vec());
        let ids: Vec<(&str, &str, usize)> = list
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.title.as_str(), t.steps.len()))
            .collect();
        assert_eq!(
            ids,
            [("1", "", 0), ("1.1", "Set up", 2), ("1.2", "Wire up", 1)]
        );
        assert_eq!(list.tasks[1].requirements.as_deref(), Some("1.1"));
        let r = tick(
            dir.path(),
            &path,
            Path::new("tasks.md"),
            "1.1",
            "Set up",
            false,
        )
        .unwrap();
        assert_eq!(r.ids, ["1.1"]);
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after, text.replace("- [ ] Create", "- [x] Create"));
        // The checklist above the first heading task is not a step of anything.
        assert!(after.contains("- [ ] Read the design"));
        let again = crate::spec::parse_bytes("tasks.md", after.into_bytes());
        assert_eq!(again.tasks[1].state, TaskState::Done);
    }

    #[test]
    fn keeps_the_files_tick_style() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        std::fs::write(&path, "- [X] 1. One\n- [ ] 2. Two\n").unwrap();
        tick(dir.path(), &path, Path::new("tasks.md"), "2", "Two", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "- [X] 1. One\n- [X] 2. Two\n"
        );
    }

    #[test]
    fn ticks_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        let other_name = dir.path().join("hard-link.md");
        std::fs::write(&path, "- [ ] 1. One\n").unwrap();
        // A second name for the same file sees the tick only if the file itself was written.
        std::fs::hard_link(&path, &other_name).unwrap();
        tick(dir.path(), &path, Path::new("tasks.md"), "1", "One", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&other_name).unwrap(),
            "- [x] 1. One\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn refuses_a_tasks_md_that_leads_outside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside.md");
        std::fs::write(&outside, "- [ ] 1. One\n").unwrap();
        let path = root.join("tasks.md");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let e = tick(&root, &path, Path::new("tasks.md"), "1", "One", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("leads outside the workspace"), "{e}");
        assert!(e.contains("outside.md"), "{e}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "- [ ] 1. One\n");
    }

    #[test]
    fn a_box_wider_than_a_byte_is_not_ticked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        let text = "- [ ] 1. One\n- [\u{a0}] 2. Two\n";
        std::fs::write(&path, text).unwrap();
        let e = tick(dir.path(), &path, Path::new("tasks.md"), "2", "Two", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tasks.md:2:4: the box of task 2 holds"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
