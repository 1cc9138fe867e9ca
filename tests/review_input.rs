//! A review task whose text holds letters that lowercase to more bytes (`İ`) next to
//! multi-byte characters, run with the built binary: the run reads its verdict and finishes,
//! instead of the scheduler panicking mid-run.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use support::{Scratch, is_ticked};

#[test]
fn a_review_line_with_unusual_letters_does_not_stop_the_run() {
    let s = Scratch::new(
        "# Implementation Tasks\n\n\
         - [ ] 1. **Build**\n  - _Dependencies: None_\n  ```sh\n  echo 1 > one.txt\n  ```\n\n\
         - [ ] CR-A. **Review**\n  - İ saved to✅ x\n  - _Dependencies: Task 1_\n  ```sh\n  echo 'Status: APPROVED'\n  ```\n\n",
    );
    let run = s.shell_run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("CR-A"), "done", "{}", run.context());
    assert_eq!(
        run.finished("CR-A")["verdict"],
        "approved",
        "{}",
        run.context()
    );
    assert!(is_ticked(&s.tasks_md(), "CR-A"));
}
