//! Surgical edits of tasks.md: ticking a task's box changes exactly the state byte, after
//! re-reading the file and finding the task again, and writes the file atomically.
//!
//! Ticks are made one at a time by the caller; each re-reads the file, so concurrent
//! completions never lose a tick, and edits the user made meanwhile are kept.

use std::path::Path;

use super::model::TaskState;
use crate::error::{Error, Result};
use crate::fsutil;

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticked {
    /// Ids whose box changed: the task, then any container it completed.
    pub ids: Vec<String>,
}

/// Ticks task `id` (and every container it completes) in the file at `path`. `title` is the
/// title the task had when the run was planned: if the file now says something else, nothing
/// is written.
///
/// With `optional_left_out` (`--skip-optional`), a container is complete once its required
/// sub-tasks are, as Kiro ticks a parent; otherwise its optional sub-tasks count too.
pub fn tick(
    path: &Path,
    display: &Path,
    id: &str,
    title: &str,
    optional_left_out: bool,
) -> Result<Ticked> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", display, e))?;
    let list = super::parse_bytes(display.to_path_buf(), bytes.clone());
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
    let mut new = bytes.clone();
    let mut ticked = Vec::new();
    // Edits from the end of the file backwards keep earlier offsets valid.
    let mut edits: Vec<(usize, usize)> = Vec::new();
    let mut done = vec![false; list.tasks.len()];
    for (i, t) in list.tasks.iter().enumerate() {
        done[i] = t.state == TaskState::Done;
    }
    let mut at = Some(index);
    while let Some(i) = at {
        let t = &list.tasks[i];
        let complete = if t.is_container() {
            list.leaves_of(i)
                .iter()
                .all(|&l| done[l] || (optional_left_out && list.tasks[l].optional))
        } else {
            true
        };
        if !complete {
            break;
        }
        if let Some(cb) = t.checkbox
            && t.state != TaskState::Done
        {
            edits.push((cb.byte_offset, cb.ch.len_utf8()));
            ticked.push(t.id.clone());
        }
        // A heading task: every step not yet ticked.
        if t.state != TaskState::Done && !t.steps.is_empty() {
            for cb in t.steps.iter().filter(|cb| !matches!(cb.ch, 'x' | 'X')) {
                edits.push((cb.byte_offset, cb.ch.len_utf8()));
            }
            ticked.push(t.id.clone());
        }
        done[i] = true;
        at = t.parent;
    }
    if edits.is_empty() {
        return Ok(Ticked { ids: ticked });
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (offset, len) in edits {
        new.splice(offset..offset + len, [mark]);
    }
    fsutil::replace_file(path, &bytes, &new)?;
    Ok(Ticked { ids: ticked })
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
        let r = tick(&path, Path::new("tasks.md"), "2.2", "B", false).unwrap();
        assert_eq!(r.ids, ["2.2", "2"]);
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            "# T\r\n\r\n- [ ] 1. One\r\n- [x] 2. Two\r\n  - [x] 2.1 A\r\n  - [x] 2.2 B\r\n"
        );
        // Ticking again changes nothing.
        assert!(
            tick(&path, Path::new("tasks.md"), "2.2", "B", false)
                .unwrap()
                .ids
                .is_empty()
        );
        // A changed title is not ticked.
        assert!(tick(&path, Path::new("tasks.md"), "1", "Uno", false).is_err());
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
        let r = tick(&path, Path::new("tasks.md"), "1.1", "Set up", false).unwrap();
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
        tick(&path, Path::new("tasks.md"), "2", "Two", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "- [X] 1. One\n- [X] 2. Two\n"
        );
    }
}
