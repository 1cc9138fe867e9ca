//! specflow's review gates: which tasks are reviews, where a review's verdict is read from, how
//! it is recorded on the review's commit, and the names of the branches of later rounds.
//!
//! A review (`CR-A`, `PR-A`, `CR-FINAL`, `CR1`, or any task a conditional task's `(failed)`
//! dependency or an `(approved)` dependency names) gives a verdict: `APPROVED` or
//! `REQUIRES CHANGES`. The scheduler runs the loop (review, rework, review again); this module
//! holds the pure parts and the git helpers it needs.

use std::path::{Component, Path};

use git2::Repository;

use crate::git;
use crate::git::trailer;
use crate::report::Verdict;
use crate::spec::TaskList;
use crate::spec::deps::Requirement;

/// The trailer that records a review's verdict on its commit.
pub const VERDICT_TRAILER: &str = "Spec-Exec-Verdict";
/// The trailer that records a review's or rework's round.
pub const ROUND_TRAILER: &str = "Spec-Exec-Round";

/// The most of an agent's output quoted as findings when the verdict came from it.
const FINDINGS_TAIL_LINES: usize = 60;
const FINDINGS_TAIL_BYTES: usize = 6000;
/// The most of a review file quoted as findings.
const FINDINGS_FILE_BYTES: usize = 20_000;

/// The verdict a text gives: the last `APPROVED` or `REQUIRES CHANGES` in it (case-insensitive,
/// as whole words; `REQUIRES_CHANGES` and `requires-changes` count too). `NOT APPROVED` asks
/// for changes.
pub fn parse_verdict(text: &str) -> Option<Verdict> {
    let lower = text.to_lowercase();
    let bytes = lower.as_bytes();
    let boundary_before = |i: usize| i == 0 || !is_word_byte(bytes[i - 1]);
    let boundary_after = |j: usize| j >= bytes.len() || !is_word_byte(bytes[j]);
    let mut last: Option<(usize, Verdict)> = None;
    let mut consider = |at: usize, v: Verdict| {
        if last.is_none_or(|(p, _)| at >= p) {
            last = Some((at, v));
        }
    };
    for (i, _) in lower.match_indices("approved") {
        if !boundary_before(i) || !boundary_after(i + "approved".len()) {
            continue;
        }
        let before = lower[..i].trim_end_matches([' ', '\t', '*', '_', '`']);
        let negated = before.ends_with("not") && {
            let n = before.len() - 3;
            n == 0 || !is_word_byte(bytes[n - 1])
        };
        consider(
            i,
            if negated {
                Verdict::RequiresChanges
            } else {
                Verdict::Approved
            },
        );
    }
    for (i, _) in lower.match_indices("requires") {
        if !boundary_before(i) {
            continue;
        }
        let rest = &lower[i + "requires".len()..];
        let sep = rest
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'_' | b'-'))
            .count();
        if sep == 0 || !rest[sep..].starts_with("changes") {
            continue;
        }
        let end = i + "requires".len() + sep + "changes".len();
        if boundary_after(end) {
            consider(i, Verdict::RequiresChanges);
        }
    }
    last.map(|(_, v)| v)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Whether an id names a review by specflow's naming: `CR-A`, `PR-B`, `CR-FINAL`, `CR1`, `PR2`.
pub fn is_review_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("CR").or_else(|| id.strip_prefix("PR")) else {
        return false;
    };
    rest.strip_prefix('-').is_some_and(|r| !r.is_empty())
        || (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// The review tasks of a list: by id, or because a `(failed)` dependency names them. Indexed
/// by task.
pub fn reviews(list: &TaskList) -> Vec<bool> {
    let mut is = vec![false; list.tasks.len()];
    for i in list.leaves() {
        if is_review_id(&list.tasks[i].id) {
            is[i] = true;
        }
        for e in &list.tasks[i].deps {
            // A task that runs only if `e.on` asks for changes needs its verdict. (An
            // `(approved)` dependency on a task that is no review by name is met by its success.)
            if e.requirement == Requirement::Failed {
                is[e.on] = true;
            }
        }
    }
    for (i, r) in is.iter_mut().enumerate() {
        *r &= !list.tasks[i].is_container();
    }
    is
}

/// The file a review writes its verdict to, relative to the worktree: the task's
/// `Review output saved to: path` detail, else `code_review/<id>.md` (`product_review/<id>.md`
/// for a `PR…` id).
pub fn verdict_file(list: &TaskList, index: usize) -> String {
    let task = &list.tasks[index];
    let lines = task
        .details
        .iter()
        .flat_map(|d| d.lines())
        .map(str::to_owned)
        .chain(
            task.metadata
                .iter()
                .map(|m| format!("{}: {}", m.key, m.value)),
        );
    for line in lines {
        if let Some(path) = saved_to(&line) {
            return path;
        }
    }
    let dir = if task.id.starts_with("PR") {
        "product_review"
    } else {
        "code_review"
    };
    format!("{dir}/{}.md", git::ref_safe(&task.id))
}

/// The path of a `… saved to: path` line, when it is a relative path inside the worktree.
fn saved_to(line: &str) -> Option<String> {
    // ASCII case folding keeps every byte where it was, so offsets found in `lower` are valid
    // in `line` (`to_lowercase` makes `İ` three bytes of two).
    let lower = line.to_ascii_lowercase();
    let at = lower.find("saved to")?;
    let rest = line[at + "saved to".len()..].trim_start_matches(['*', '_', ' ']);
    let rest = rest.strip_prefix(':')?.trim_start_matches(['*', '_', ' ']);
    let path = if let Some(quoted) = rest.strip_prefix('`') {
        quoted.split('`').next()?
    } else {
        rest.split_whitespace().next()?
    };
    let path = path
        .trim_matches(['"', '\'', '*', '_'])
        .trim_end_matches(['.', ',', ';']);
    let p = Path::new(path);
    let inside = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    inside.then(|| path.to_owned())
}

/// The branch of round `round` of a task: the task's branch for the first round,
/// `<branch>.round-<n>` after.
pub fn round_branch(prefix: &str, feature: &str, id: &str, round: u32) -> String {
    let branch = git::branch_name(prefix, feature, id);
    if round <= 1 {
        branch
    } else {
        format!("{branch}.round-{round}")
    }
}

/// The name of round `round`'s worktree directory, log and prompt.
pub fn round_name(id: &str, round: u32) -> String {
    if round <= 1 {
        git::ref_safe(id)
    } else {
        format!("{}.round-{round}", git::ref_safe(id))
    }
}

/// The commit message of a review round: the task's, with the verdict and round trailers.
pub fn commit_message(
    feature: &str,
    id: &str,
    title: &str,
    round: u32,
    verdict: Option<Verdict>,
) -> String {
    let mut m = git::commit_message(feature, id, title);
    if round > 1 {
        m.push_str(&format!("{ROUND_TRAILER}: {round}\n"));
    }
    if let Some(v) = verdict {
        m.push_str(&format!("{VERDICT_TRAILER}: {}\n", v.word_kebab()));
    }
    m
}

/// A review round recorded on a branch by an earlier run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub round: u32,
    pub branch: String,
    pub oid: git2::Oid,
    pub verdict: Option<Verdict>,
}

/// The rounds of task `id` recorded on its round branches: consecutive from round 1, each
/// branch's tip a commit of the task.
pub fn recorded_rounds(repo: &Repository, prefix: &str, feature: &str, id: &str) -> Vec<Recorded> {
    let mut out = Vec::new();
    for round in 1..=1000 {
        let branch = round_branch(prefix, feature, id, round);
        let Some(commit) = repo
            .find_branch(&branch, git2::BranchType::Local)
            .ok()
            .and_then(|b| b.get().peel_to_commit().ok())
        else {
            break;
        };
        let message = commit.message().unwrap_or_default();
        if trailer(message, git::TASK_TRAILER) != Some(id) {
            break;
        }
        let verdict = trailer(message, VERDICT_TRAILER).and_then(|v| match v {
            "approved" => Some(Verdict::Approved),
            "requires-changes" => Some(Verdict::RequiresChanges),
            _ => None,
        });
        out.push(Recorded {
            round,
            branch,
            oid: commit.id(),
            verdict,
        });
    }
    out
}

/// A review round's verdict, with its findings and where they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub verdict: Verdict,
    /// The review file's text, or the end of the agent's output.
    pub findings: String,
    /// Where the findings come from, for the rework's prompt.
    pub source: String,
}

/// A review's verdict after its agent finished: from its verdict file when the agent wrote it
/// in this round (new, changed, or written since `started`), else from its output.
pub fn read_verdict(
    worktree: &Path,
    file: &str,
    log: &Path,
    started: std::time::SystemTime,
    final_text: Option<&str>,
) -> Option<Read> {
    let path = worktree.join(file);
    if let Ok(bytes) = std::fs::read(&path) {
        let fresh = head_content(worktree, file).as_deref() != Some(bytes.as_slice())
            || std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= started);
        let text = String::from_utf8_lossy(&bytes);
        if fresh && let Some(verdict) = parse_verdict(&text) {
            return Some(Read {
                verdict,
                findings: truncate(&text, FINDINGS_FILE_BYTES),
                source: format!("`{file}`"),
            });
        }
    }
    // The agent's final message, when its stream has one: its output is a stream of events.
    if let Some(text) = final_text
        && let Some(verdict) = parse_verdict(text)
    {
        return Some(Read {
            verdict,
            findings: tail(text),
            source: "the review's final message".to_owned(),
        });
    }
    let output = std::fs::read(log).ok()?;
    let output = String::from_utf8_lossy(&output);
    let verdict = parse_verdict(&output)?;
    Some(Read {
        verdict,
        findings: tail(&output),
        source: "the end of the review's output".to_owned(),
    })
}

/// The content of `file` in the worktree's HEAD commit.
fn head_content(worktree: &Path, file: &str) -> Option<Vec<u8>> {
    let repo = Repository::open(worktree).ok()?;
    let tree = repo.head().ok()?.peel_to_tree().ok()?;
    crate::git::blob_at(&repo, &tree, Path::new(file))
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[…]", &text[..end])
}

/// The last lines of an agent's output.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let from = lines.len().saturating_sub(FINDINGS_TAIL_LINES);
    let mut text = lines[from..].join("\n");
    if text.len() > FINDINGS_TAIL_BYTES {
        let mut start = text.len() - FINDINGS_TAIL_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = format!("[…]{}", &text[start..]);
    }
    text
}

/// The section added to a review's prompt: where to write the verdict, and how.
pub fn review_prompt(file: &str, round: u32, reworked_by: Option<&str>) -> String {
    let mut p = String::from("\n## Review verdict\n\n");
    if round > 1 {
        p.push_str(&format!(
            "This is review round {round}: the work was reworked{} after the previous round asked for changes. Review it again as it is now.\n\n",
            reworked_by.map(|w| format!(" (task {w})")).unwrap_or_default()
        ));
    }
    p.push_str(&format!(
        "Write your review to `{file}`, and end it with exactly one verdict line: `Status: APPROVED` when the work is acceptable as it is, or `Status: REQUIRES CHANGES` followed by what must change. Say the verdict as the last thing you print, too.\n"
    ));
    p
}

/// The section added to a rework's prompt: the review's findings.
pub fn rework_prompt(review: &str, round: u32, source: &str, findings: &str) -> String {
    format!(
        "\n## Review findings\n\nReview {review} (round {round}) requires changes. Address its findings below; the review runs again on top of your work.\nThe findings, from {source}:\n\n````text\n{}\n````\n",
        findings.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_final_message_gives_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("review.log");
        // The log is the stream: events, where a verdict's words may stand inside quotes.
        std::fs::write(
            &log,
            "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"Status: REQUIRES CHANGES?\"}]}}\n",
        )
        .unwrap();
        let read = read_verdict(
            dir.path(),
            "code_review/R.md",
            &log,
            std::time::SystemTime::now(),
            Some("All checked.\nStatus: APPROVED"),
        )
        .unwrap();
        assert_eq!(read.verdict, Verdict::Approved);
        assert_eq!(read.source, "the review's final message");
    }

    #[test]
    fn verdicts() {
        use Verdict::*;
        assert_eq!(parse_verdict("Status: APPROVED"), Some(Approved));
        assert_eq!(parse_verdict("status: approved."), Some(Approved));
        assert_eq!(
            parse_verdict("**Status**: Requires changes"),
            Some(RequiresChanges)
        );
        assert_eq!(parse_verdict("REQUIRES CHANGES"), Some(RequiresChanges));
        assert_eq!(parse_verdict("requires_changes"), Some(RequiresChanges));
        assert_eq!(parse_verdict("Requires-Changes\n"), Some(RequiresChanges));
        // The last verdict wins.
        assert_eq!(
            parse_verdict("First: REQUIRES CHANGES\n...fixed.\nStatus: APPROVED\n"),
            Some(Approved)
        );
        assert_eq!(
            parse_verdict("Would be APPROVED if not for x.\nStatus: REQUIRES CHANGES"),
            Some(RequiresChanges)
        );
        assert_eq!(parse_verdict("Status: NOT APPROVED"), Some(RequiresChanges));
        assert_eq!(parse_verdict("not **approved**"), Some(RequiresChanges));
        // Whole words only.
        assert_eq!(parse_verdict("unapproved approvedly requireschanges"), None);
        assert_eq!(parse_verdict("it requires more changes"), None);
        assert_eq!(parse_verdict(""), None);
        assert_eq!(parse_verdict("Looks good to me."), None);
        assert_eq!(parse_verdict("Статус: APPROVED ✅"), Some(Approved));
    }

    #[test]
    fn review_ids() {
        for id in ["CR-A", "PR-B", "CR-FINAL", "CR1", "PR12", "CR-A1"] {
            assert!(is_review_id(id), "{id}");
        }
        for id in ["RW-A", "1", "CR", "CR-", "CRUD", "PRX-1", "T001", "cr-a"] {
            assert!(!is_review_id(id), "{id}");
        }
    }

    #[test]
    fn saved_to_paths() {
        assert_eq!(
            saved_to("Review output saved to: `code_review/CR-A.md`").as_deref(),
            Some("code_review/CR-A.md")
        );
        assert_eq!(
            saved_to("**Review output saved to**: reviews/pr a.md").as_deref(),
            Some("reviews/pr")
        );
        assert_eq!(
            saved_to("Review output saved to: product_review/PR-A.md.").as_deref(),
            Some("product_review/PR-A.md")
        );
        assert_eq!(saved_to("Review output saved to: `/etc/passwd`"), None);
        assert_eq!(saved_to("Review output saved to: `../x.md`"), None);
        assert_eq!(saved_to("Run the tests"), None);
    }

    #[test]
    fn saved_to_with_letters_whose_lowercase_is_longer() {
        assert_eq!(saved_to("İ saved to✅ x"), None);
        assert_eq!(
            saved_to("İİ SAVED TO: `reviews/İ.md`").as_deref(),
            Some("reviews/İ.md")
        );
    }

    #[test]
    fn round_names_are_ref_safe() {
        assert_eq!(round_branch("spec", "f", "CR-A", 1), "spec/f/CR-A");
        assert_eq!(round_branch("spec", "f", "CR-A", 2), "spec/f/CR-A.round-2");
        assert_eq!(round_name("RW-A", 3), "RW-A.round-3");
        for id in ["CR-A", "x.lock", "a b"] {
            let b = round_branch("spec", "f", id, 7);
            assert!(
                git2::Reference::is_valid_name(&format!("refs/heads/{b}")),
                "{b}"
            );
        }
    }

    #[test]
    fn output_tail() {
        let long: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let t = tail(&long);
        assert!(t.starts_with("line 140") && t.ends_with("line 199"), "{t}");
    }
}
