//! The prompt an agent gets on standard input, after the spec workflow's agent template: the
//! feature, where its context is, the task with its details, the requirements it names (with
//! their text when requirements.md has them), the persona, and the rules.

use std::fmt::Write as _;
use std::path::Path;

use crate::spec::TaskList;

/// What the prompt needs besides the task.
#[derive(Debug)]
pub struct PromptContext<'a> {
    pub feature: &'a str,
    /// The feature's directory relative to the repository (the same inside every worktree).
    pub spec_dir: &'a Path,
    /// The feature's directory in the user's checkout, to read requirements.md from.
    pub spec_dir_abs: &'a Path,
    /// The repository root in the user's checkout (for persona files).
    pub root: &'a Path,
    pub branch: &'a str,
}

/// Lines of requirements.md that define the `N.M` ids the task names.
fn requirement_lines(requirements: &str, text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for token in requirements.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let token = token.trim_matches('.');
        if token.is_empty() || !token.contains(|c: char| c.is_ascii_digit()) {
            continue;
        }
        if out.iter().any(|(t, _): &(String, String)| t == token) {
            continue;
        }
        let found = text.lines().find(|line| {
            let l = line.trim_start_matches(['#', '-', '*', ' ']);
            let l = l.strip_prefix("Requirement ").unwrap_or(l);
            l.strip_prefix(token)
                .is_some_and(|rest| rest.starts_with([' ', ':', '.', ')']) || rest.is_empty())
        });
        if let Some(line) = found {
            out.push((token.to_owned(), line.trim().to_owned()));
        }
    }
    out
}

pub fn build(list: &TaskList, index: usize, ctx: &PromptContext<'_>) -> String {
    let task = &list.tasks[index];
    let spec = ctx.spec_dir.display();
    let mut p = String::new();
    let _ = writeln!(p, "# Task {}: {}\n", task.id, task.title);
    let _ = writeln!(
        p,
        "You are implementing one task of the feature `{}`, in a git worktree of its own.\n",
        ctx.feature
    );
    let _ = writeln!(p, "## Context\n");
    let _ = writeln!(
        p,
        "- Specification: `{spec}/` (requirements.md, design.md, tasks.md)"
    );
    let _ = writeln!(p, "- Requirements: `{spec}/requirements.md`");
    let _ = writeln!(p, "- Design: `{spec}/design.md`");
    let _ = writeln!(
        p,
        "- Task list: `{spec}/tasks.md` (read it for the surrounding tasks)\n"
    );
    let _ = writeln!(p, "## Task {}\n", task.id);
    let _ = writeln!(p, "{}", task.title);
    if let Some(parent) = task.parent {
        let parent = &list.tasks[parent];
        let _ = writeln!(p, "\nPart of task {}: {}", parent.id, parent.title);
    }
    if !task.details.is_empty() {
        p.push('\n');
        for detail in &task.details {
            if detail.starts_with("```") || detail.starts_with("~~~") {
                let _ = writeln!(p, "{detail}");
            } else {
                let _ = writeln!(p, "- {detail}");
            }
        }
    }
    for m in &task.metadata {
        let _ = writeln!(p, "- {}: {}", m.key, m.value);
    }
    if let Some(reqs) = &task.requirements {
        let _ = writeln!(
            p,
            "\n## Requirements\n\nThis task implements requirements {reqs}."
        );
        let text =
            std::fs::read_to_string(ctx.spec_dir_abs.join("requirements.md")).unwrap_or_default();
        let lines = requirement_lines(reqs, &text);
        if !lines.is_empty() {
            p.push('\n');
            for (_, line) in lines {
                let _ = writeln!(p, "- {line}");
            }
        }
    }
    if let Some(refs) = &task.spec_references {
        let _ = writeln!(p, "\nSpec references: {refs}");
    }
    if let Some(agent) = list.agent_of(index) {
        let persona = [".claude/agents", ".kiro/agents"]
            .iter()
            .map(|d| ctx.root.join(d).join(format!("{agent}.md")))
            .find(|f| f.is_file())
            .and_then(|f| std::fs::read_to_string(f).ok());
        let _ = writeln!(p, "\n## Persona\n\nWork as `{agent}`.");
        if let Some(text) = persona {
            let _ = writeln!(p, "\n{}", text.trim_end());
        }
    }
    let _ = writeln!(p, "\n## Rules\n");
    let _ = writeln!(
        p,
        "- Only work on this task; other tasks are handled separately."
    );
    let _ = writeln!(
        p,
        "- Do not edit tasks.md: spec-exec ticks the task when you succeed."
    );
    let _ = writeln!(
        p,
        "- Do not commit: spec-exec commits your changes on branch `{}`.",
        ctx.branch
    );
    let _ = writeln!(
        p,
        "- Exit with status 0 when the task is done, non-zero if you could not do it."
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_requirement_lines() {
        let text = "# R\n## 1. Accounts\n- 1.1 Register with email.\n- 1.2 Hash passwords.\n### Requirement 2.1: Log in\n";
        let found = requirement_lines("1.1, 2.1, 9.9", text);
        assert_eq!(
            found,
            [
                ("1.1".to_owned(), "- 1.1 Register with email.".to_owned()),
                ("2.1".to_owned(), "### Requirement 2.1: Log in".to_owned())
            ]
        );
    }
}
