//! The prompt an agent gets, end to end: the built binary runs a one-task spec with the `shell`
//! agent in a scratch git repository, the task copies `$SPEC_EXEC_PROMPT_FILE` into its
//! worktree, and spec-exec commits the copy on the task's branch, where the test reads it.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::process::{Output, Stdio};

mod support;

use support::{Project, git_in, spec_exec_in, text, write, write_project};

const TASKS: &str = "\
# Implementation Plan

- [ ] 1. Register users
  - Hash the password before storing it
  - Reject an email address that is already taken
  - _Requirements: 1.1, 2_
  - _Agent: rust-reviewer_
  ```sh
  cp \"$SPEC_EXEC_PROMPT_FILE\" prompt-copy.md
  ```
";

const REQUIREMENTS: &str = "\
# Requirements Document

## Introduction

Visitors register, then log in.

## Requirements

### Requirement 1: User Registration

**User Story:** As a visitor, I want to register, so that I can log in.

#### Acceptance Criteria

1. WHEN a visitor submits a valid email and password THEN the system SHALL create an account
2. IF the email is taken THEN the system SHALL reject the registration

### Requirement 2: Login

**User Story:** As a registered user, I want to log in, so that I can see my account.

#### Acceptance Criteria

1. WHEN a user submits valid credentials THEN the system SHALL start a session
2. IF the password is wrong THEN the system SHALL refuse the login
";

const PERSONA: &str = "\
---
name: rust-reviewer
---
You review Rust code with care and insist on tests for every change.
";

fn spec_exec(repo: &Path, args: &[&str]) -> Output {
    spec_exec_in(repo, args)
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_TERM_COLOR")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Spec Tester")
        .env("GIT_AUTHOR_EMAIL", "tester@localhost")
        .env("GIT_COMMITTER_NAME", "Spec Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@localhost")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_prompt_names_the_task_its_requirements_persona_and_rules() {
    let tmp = tempfile::Builder::new()
        .prefix("spec-exec-prompt-")
        .tempdir()
        .unwrap();
    let repo = tmp.path();
    let spec = repo.join("documentation/features/demo");
    write_project(repo, Project::Workspace);
    write(&spec.join("tasks.md"), TASKS);
    write(&spec.join("requirements.md"), REQUIREMENTS);
    write(
        &spec.join("design.md"),
        "# Design\n\nPasswords are hashed.\n",
    );
    write(&repo.join(".claude/agents/rust-reviewer.md"), PERSONA);
    git_in(repo, &["init", "-q", "-b", "main"]);
    git_in(repo, &["config", "user.name", "Spec Tester"]);
    git_in(repo, &["config", "user.email", "tester@localhost"]);
    git_in(repo, &["config", "commit.gpgsign", "false"]);
    git_in(repo, &["add", "-A"]);
    git_in(repo, &["commit", "-q", "-m", "The project and its spec"]);

    let approve = spec_exec(repo, &["approve", "demo"]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    git_in(repo, &["commit", "-q", "-am", "Approve the task list"]);

    let run = spec_exec(
        repo,
        &["demo", "--agent", "shell", "--message-format", "json"],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}\n{}",
        text(&run.stdout),
        text(&run.stderr)
    );

    let prompt = git_in(repo, &["show", "spec/demo/1:prompt-copy.md"]);
    let expected = [
        // The feature and the task.
        "`demo`",
        "# Task 1: Register users",
        "- Hash the password before storing it",
        "- Reject an email address that is already taken",
        // The requirements: criterion 1 of requirement 1, all of requirement 2.
        "This task implements requirements 1.1, 2.",
        "### 1.1 — Requirement 1: User Registration, acceptance criterion 1",
        "> WHEN a visitor submits a valid email and password THEN the system SHALL create an account",
        "### 2 — Requirement 2: Login",
        "> **User Story:** As a registered user, I want to log in, so that I can see my account.",
        "> 1. WHEN a user submits valid credentials THEN the system SHALL start a session",
        "> 2. IF the password is wrong THEN the system SHALL refuse the login",
        // Where the spec is.
        "documentation/features/demo/design.md",
        "documentation/features/demo/requirements.md",
        // The persona, with its file's text.
        "Work as `rust-reviewer`.",
        "You review Rust code with care and insist on tests for every change.",
        // The rules.
        "Only work on this task",
        "Do not edit tasks.md",
        "Do not commit",
    ];
    for needle in expected {
        assert!(
            prompt.contains(needle),
            "the prompt lacks {needle:?}:\n{prompt}"
        );
    }
    // Only the criterion the task names, not its neighbour; no doubled bullets; all found.
    assert!(
        !prompt.contains("IF the email is taken"),
        "criterion 1.2 is not named:\n{prompt}"
    );
    assert!(!prompt.contains("- - "), "{prompt}");
    assert!(!prompt.contains("Not found"), "{prompt}");
}
