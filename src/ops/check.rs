//! `cargo spec-exec check`: every feature's spec and plan validated, for people and for CI
//! (JSON lines, GitHub workflow commands and step summary, approval required, only the
//! features a change touched).

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use super::{Summary, all_features, approval_error, persona_roots, summarize};
use crate::cli::CheckCommand;
use crate::error::{Diagnostic, Result, exit};
use crate::output::{Shell, count, github};
use crate::source::display_path;
use crate::spec::{self, Feature};
use crate::workspace::Workspace;

#[derive(Debug, Serialize)]
struct CheckLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    feature: &'a str,
    tasks_file: &'a str,
    dialect: Option<crate::spec::model::Dialect>,
    ok: bool,
    done: usize,
    total: usize,
    approval: &'static str,
    diagnostics: &'a [Diagnostic],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

pub fn check(shell: &Shell, ws: &Workspace, opts: &CheckCommand) -> Result<i32> {
    let all = all_features(ws)?;
    let mut features = if opts.features.is_empty() {
        all
    } else {
        opts.features
            .iter()
            .map(|n| spec::pick(&all, &ws.root, &ws.features_dir(), n))
            .collect::<Result<Vec<_>>>()?
    };
    if features.is_empty() {
        let dir = display_path(&ws.features_dir(), &ws.root);
        shell.status(
            "Finished",
            format!("no features under `{}` to check", dir.display()),
        );
        return Ok(exit::OK);
    }
    let mut unchanged = Vec::new();
    if let Some(rev) = &opts.changed_since {
        (features, unchanged) = changed_since(ws, features, rev)?;
        let names = |fs: &[Feature]| {
            fs.iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if features.is_empty() {
            shell.status(
                "Finished",
                format!(
                    "no feature changed since `{rev}`: nothing to check ({} unchanged)",
                    count(unchanged.len(), "feature")
                ),
            );
            if shell.is_github() {
                step_summary(
                    shell,
                    &format!(
                        "### cargo spec-exec check\n\nNo feature changed since `{}`: nothing to check.\n\n",
                        github::cell(rev)
                    ),
                );
            }
            return Ok(exit::OK);
        }
        let mut line = format!(
            "{} changed since `{rev}`: {}",
            count(features.len(), "feature"),
            names(&features)
        );
        if !unchanged.is_empty() {
            line.push_str(&format!("; unchanged, not checked: {}", names(&unchanged)));
        }
        shell.status("Selected", line);
    }
    let roots = persona_roots(ws);
    let mut results: Vec<Summary> = features
        .into_par_iter()
        .map(|f| summarize(ws, &roots, f))
        .collect();
    if opts.approved {
        for s in &mut results {
            if let Some(state) = &s.approval_state
                && let Some(d) = approval_error(&s.tasks_file, &s.feature.name, state)
            {
                s.diagnostics.push(d);
            }
        }
    }
    let mut failed = 0;
    let mut errors = 0;
    let mut warnings = 0;
    for s in &results {
        let e = s.diagnostics.iter().filter(|d| d.is_error()).count();
        errors += e;
        warnings += s.diagnostics.len() - e;
        if e > 0 {
            failed += 1;
        }
        let (done, total) = s.progress.unwrap_or((0, 0));
        if shell.is_json() {
            shell.json(&CheckLine {
                kind: "check",
                feature: &s.feature.name,
                tasks_file: &s.tasks_file,
                dialect: s.dialect,
                ok: e == 0,
                done,
                total,
                approval: s.approval,
                diagnostics: &s.diagnostics,
                notes: &s.notes,
            });
            continue;
        }
        for d in &s.diagnostics {
            shell.diagnostic(d);
        }
        if e == 0 {
            shell.status(
                "Checked",
                format!(
                    "{} ({} task list, {done}/{total} tasks done, {})",
                    s.feature.name,
                    s.dialect_name(),
                    s.approval
                ),
            );
            for note in &s.notes {
                shell.note(note, Some(Path::new(&s.tasks_file)));
            }
        }
    }
    let checked = results.len();
    let noun = if checked == 1 { "feature" } else { "features" };
    let errors_text = format!(
        "{errors} {}, {warnings} {}",
        if errors == 1 { "error" } else { "errors" },
        if warnings == 1 { "warning" } else { "warnings" },
    );
    if shell.is_github() {
        let verdict = if failed > 0 {
            format!("{failed} of {checked} {noun} failed the check ({errors_text}).")
        } else {
            format!("{checked} {noun} checked: {errors_text}.")
        };
        let mut md = table(&results);
        md.push_str(&format!("\n{verdict}\n"));
        if let Some(rev) = &opts.changed_since
            && !unchanged.is_empty()
        {
            md.push_str(&format!(
                "\nUnchanged since `{}`, not checked: {}.\n",
                github::cell(rev),
                unchanged
                    .iter()
                    .map(|f| github::cell(&f.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        md.push('\n');
        step_summary(shell, &md);
    }
    if failed > 0 {
        if !shell.is_json() {
            shell.out(format!(
                "error: {failed} of {checked} {noun} failed the check ({errors_text})"
            ));
        }
        Ok(exit::INVALID)
    } else {
        shell.status(
            "Finished",
            format!(
                "{checked} {noun} checked: no errors, {warnings} {}",
                if warnings == 1 { "warning" } else { "warnings" }
            ),
        );
        Ok(exit::OK)
    }
}

/// `features` split into those with a file in their directory that differs between `rev` and
/// the working tree, and the others.
fn changed_since(
    ws: &Workspace,
    features: Vec<Feature>,
    rev: &str,
) -> Result<(Vec<Feature>, Vec<Feature>)> {
    let git = crate::git::Git::open(&ws.root)?;
    let changed = git.changed_since(rev)?;
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let workdir = canonical(&git.workdir().unwrap_or_else(|| ws.root.clone()));
    Ok(features.into_iter().partition(|f| {
        match canonical(&f.dir).strip_prefix(&workdir) {
            Ok(dir) => changed.iter().any(|p| p.starts_with(dir)),
            // Outside the repository: git cannot tell, so it is checked.
            Err(_) => true,
        }
    }))
}

/// The step summary's table: one row per feature checked.
fn table(results: &[Summary]) -> String {
    let mut md = String::from(
        "### cargo spec-exec check\n\n\
         | Feature | Tasks | Pending | Approval | Errors | Warnings |\n\
         | --- | ---: | ---: | --- | ---: | ---: |\n",
    );
    for s in results {
        let e = s.diagnostics.iter().filter(|d| d.is_error()).count();
        let w = s.diagnostics.len() - e;
        let (tasks, pending) = match s.progress {
            Some((done, total)) => (total.to_string(), (total - done).to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        md.push_str(&format!(
            "| {} | {tasks} | {pending} | {} | {e} | {w} |\n",
            github::cell(&s.feature.name),
            s.approval
        ));
    }
    md
}

/// Appends to `$GITHUB_STEP_SUMMARY` when it is set; a file that cannot be written is a
/// warning (the check's verdict stands without it).
fn step_summary(shell: &Shell, markdown: &str) {
    match github::append_summary(markdown) {
        Ok(_) => {}
        Err(e) => {
            for d in e.into_diagnostics() {
                let d = Diagnostic {
                    severity: crate::error::Severity::Warning,
                    help: Some(format!(
                        "{} names the file GitHub Actions gives the step for its summary; unset it outside a step",
                        github::SUMMARY_ENV
                    )),
                    ..d
                };
                shell.diagnostic(&d);
            }
        }
    }
}
