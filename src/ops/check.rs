//! `cargo spec-exec check`: every feature's spec and plan validated, for people and for CI
//! (JSON lines, GitHub workflow commands and step summary, approval required, only the
//! features a change touched).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::{Summary, all_features, approval_error, persona_roots, summarize};
use crate::cli::CheckCommand;
use crate::error::{Diagnostic, Error, Result, exit};
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

/// The features `--changed-since` left out, as a JSON line.
#[derive(Debug, Serialize)]
struct Unchanged<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    since: &'a str,
    features: Vec<&'a str>,
}

pub fn check(shell: &Shell, ws: &Workspace, opts: &CheckCommand) -> Result<i32> {
    let mut features = named(ws, &opts.features)?;
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
        if !selected(shell, rev, &features, &unchanged) {
            return Ok(exit::OK);
        }
    }
    let mut results = checked(ws, features);
    if opts.approved {
        approval_errors(&mut results);
    }
    let totals = Totals::of(&results);
    for s in &results {
        report(shell, s);
    }
    if shell.is_github() {
        let md = summary(&results, &totals, opts.changed_since.as_deref(), &unchanged);
        step_summary(shell, &md);
    }
    Ok(finish(shell, &totals))
}

/// The check's last line; its exit code.
fn finish(shell: &Shell, totals: &Totals) -> i32 {
    if totals.failed > 0 {
        if !shell.is_json() {
            shell.out(format!("error: {}", totals.verdict()));
        }
        exit::INVALID
    } else {
        shell.status(
            "Finished",
            format!(
                "{} checked: no errors, {}",
                count(totals.checked, "feature"),
                count(totals.warnings, "warning")
            ),
        );
        exit::OK
    }
}

/// The features `names` names (every feature when it names none), each once: a feature named
/// twice (`check a a`, or by its name and its path) is checked once.
fn named(ws: &Workspace, names: &[String]) -> Result<Vec<Feature>> {
    let all = all_features(ws)?;
    let mut features = if names.is_empty() {
        all
    } else {
        names
            .iter()
            .map(|n| spec::pick(&all, &ws.root, &ws.features_dir(), n))
            .collect::<Result<Vec<_>>>()?
    };
    let mut seen = std::collections::HashSet::new();
    features.retain(|f| seen.insert(f.dir.canonicalize().unwrap_or_else(|_| f.dir.clone())));
    Ok(features)
}

/// Says which features `--changed-since rev` picked and which it left out; `false` when it
/// picked none, and there is nothing to check.
fn selected(shell: &Shell, rev: &str, features: &[Feature], unchanged: &[Feature]) -> bool {
    let names = |fs: &[Feature]| {
        fs.iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if shell.is_json() && !unchanged.is_empty() {
        shell.json(&Unchanged {
            kind: "check-unchanged",
            since: rev,
            features: unchanged.iter().map(|f| f.name.as_str()).collect(),
        });
    }
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
        return false;
    }
    let mut line = format!(
        "{} changed since `{rev}`: {}",
        count(features.len(), "feature"),
        names(features)
    );
    if !unchanged.is_empty() {
        line.push_str(&format!("; unchanged, not checked: {}", names(unchanged)));
    }
    shell.status("Selected", line);
    true
}

/// Each feature's spec and plan checked, in parallel.
fn checked(ws: &Workspace, features: Vec<Feature>) -> Vec<Summary> {
    let roots = persona_roots(ws);
    features
        .into_par_iter()
        .map(|f| summarize(ws, &roots, f))
        .collect()
}

/// `--approved`: a task list that is not approved as it is, is an error of its feature.
fn approval_errors(results: &mut [Summary]) {
    for s in results {
        if let Some(state) = &s.approval_state
            && let Some(d) = approval_error(&s.tasks_file, &s.feature.name, state)
        {
            s.diagnostics.push(d);
        }
    }
}

impl Summary {
    /// How many of its diagnostics are errors.
    fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// What the check found, over every feature checked.
struct Totals {
    checked: usize,
    /// Features with an error.
    failed: usize,
    errors: usize,
    warnings: usize,
}

impl Totals {
    fn of(results: &[Summary]) -> Totals {
        let mut totals = Totals {
            checked: results.len(),
            failed: 0,
            errors: 0,
            warnings: 0,
        };
        for s in results {
            let e = s.errors();
            totals.errors += e;
            totals.warnings += s.diagnostics.len() - e;
            if e > 0 {
                totals.failed += 1;
            }
        }
        totals
    }

    /// The check's verdict, as one sentence without its full stop.
    fn verdict(&self) -> String {
        let found = format!(
            "{}, {}",
            count(self.errors, "error"),
            count(self.warnings, "warning")
        );
        let features = count(self.checked, "feature");
        if self.failed > 0 {
            format!("{} of {features} failed the check ({found})", self.failed)
        } else {
            format!("{features} checked: {found}")
        }
    }
}

/// One feature's result: a JSON line, or its diagnostics and, when it has no error, its status
/// line and notes.
fn report(shell: &Shell, s: &Summary) {
    let e = s.errors();
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
        return;
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

/// `features` split into those with a file in their directory that differs between `rev` and
/// the working tree, and the others. A feature's tasks.md that is a link is compared where it
/// leads too; a change to the workspace's manifest or to an agent persona file (configuration
/// every feature's check reads) touches every feature.
fn changed_since(
    ws: &Workspace,
    features: Vec<Feature>,
    rev: &str,
) -> Result<(Vec<Feature>, Vec<Feature>)> {
    if let Some(remote) = rev.strip_suffix('/') {
        return Err(Error::user_with_help(
            format!("--changed-since `{rev}` names no branch: the part after `{remote}/` is empty"),
            "name the branch to compare with, e.g. `origin/main`; in a GitHub Actions workflow `github.base_ref` is empty except on pull_request events: pass --changed-since only on them, e.g. `${{ github.base_ref && format('--changed-since origin/{0}', github.base_ref) || '' }}`",
        ));
    }
    if git2::Repository::discover(&ws.root).is_err() {
        return Err(Error::user_with_help(
            format!(
                "--changed-since needs a git repository, and `{}` is not in one",
                ws.root.display()
            ),
            "run `check` without --changed-since to check every feature",
        ));
    }
    let git = crate::git::Git::open(&ws.root)?;
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let workdir = canonical(&git.workdir().unwrap_or_else(|| ws.root.clone()));
    let inside = |p: &Path| {
        canonical(p)
            .strip_prefix(&workdir)
            .ok()
            .map(Path::to_path_buf)
    };
    // What can change a feature's check besides its own files.
    let mut shared: Vec<PathBuf> = vec![ws.manifest.clone()];
    for root in persona_roots(ws) {
        shared.extend(crate::agents::PERSONA_DIRS.map(|d| root.join(d)));
    }
    let shared: Vec<PathBuf> = shared.iter().filter_map(|p| inside(p)).collect();
    // Each feature's places in the repository: `None` for one outside it, which git cannot
    // judge, so it is checked.
    let places: Vec<Option<Vec<PathBuf>>> = features
        .iter()
        .map(|f| {
            let dir = inside(&f.dir)?;
            let mut places = vec![dir];
            if let Some(tasks) = inside(&f.tasks_path())
                && !places.iter().any(|p| tasks.starts_with(p))
            {
                places.push(tasks);
            }
            Some(places)
        })
        .collect();
    let mut pathspecs: Vec<PathBuf> = shared.clone();
    pathspecs.extend(places.iter().flatten().flatten().cloned());
    let changed = git.changed_since(rev, &pathspecs)?;
    let touched = |places: &[PathBuf]| {
        changed
            .iter()
            .any(|c| places.iter().any(|p| c.starts_with(p)))
    };
    if touched(&shared) {
        return Ok((features, Vec::new()));
    }
    let (mut picked, mut left) = (Vec::new(), Vec::new());
    for (f, places) in features.into_iter().zip(places) {
        match places {
            Some(places) if !touched(&places) => left.push(f),
            _ => picked.push(f),
        }
    }
    Ok((picked, left))
}

/// The step summary's table: one row per feature checked.
fn table(results: &[Summary]) -> String {
    let mut md = String::from(
        "### cargo spec-exec check\n\n\
         | Feature | Tasks | Pending | Approval | Errors | Warnings |\n\
         | --- | ---: | ---: | --- | ---: | ---: |\n",
    );
    for s in results {
        let e = s.errors();
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

/// The step summary: the table, the verdict, and the features `--changed-since` left out.
fn summary(
    results: &[Summary],
    totals: &Totals,
    changed_since: Option<&str>,
    unchanged: &[Feature],
) -> String {
    let mut md = table(results);
    md.push_str(&format!("\n{}.\n", totals.verdict()));
    if let Some(rev) = changed_since
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
    md
}

/// The step summary of a check that could not be made (a feature that does not exist, a bad
/// `--changed-since`, a configuration error): what stopped it.
pub fn summary_of_error(shell: &Shell, error: &Error) {
    if !shell.is_github() {
        return;
    }
    step_summary(
        shell,
        &format!(
            "### cargo spec-exec check\n\n| Feature | Tasks | Pending | Approval | Errors | Warnings |\n\
             | --- | ---: | ---: | --- | ---: | ---: |\n\
             | - | - | - | - | 1 | 0 |\n\nThe check could not be made: {}.\n\n",
            github::cell(&error.to_string())
        ),
    );
}

/// Appends to `$GITHUB_STEP_SUMMARY` when it is set; a file that cannot be written is a
/// warning (the check's verdict stands without it).
fn step_summary(shell: &Shell, markdown: &str) {
    if let Err((path, e)) = github::append_summary(markdown) {
        shell.diagnostic(
            &Diagnostic::warning(format!(
                "could not write the step summary to `{}` ({}): {e}",
                path.display(),
                github::SUMMARY_ENV
            ))
            .note("the check's verdict stands without it")
            .help(format!(
                "{} is the file the GitHub Actions runner gives each step; check that an earlier command of the step did not change it or the runner's disk space",
                github::SUMMARY_ENV
            )),
        );
    }
}
