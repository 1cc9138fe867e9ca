//! The plan as people and programs read it: the `--dry-run` text, and the JSON model.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Blocked, Plan};
use crate::agents::Lineup;
use crate::error::Diagnostic;
use crate::spec::TaskList;
use crate::spec::approval::Approval;
use crate::spec::deps::Requirement;
use crate::spec::model::{CodeBlock, DepSource, MetaEntry, TaskState};

/// Version of the JSON messages; bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// Orders ids naturally: numbers by value (`2` < `10`, `2.1` < `2.10`), then the rest.
pub fn compare_ids(a: &str, b: &str) -> Ordering {
    let key = |s: &str| -> (u8, Vec<u64>, String) {
        match s
            .split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()
        {
            Some(parts) => (0, parts, String::new()),
            None => {
                // T012 / CR3: prefix then number.
                let digits = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
                let num = s[digits..].parse::<u64>().ok();
                match num {
                    Some(n) if s[..digits].chars().all(|c| c.is_ascii_uppercase()) => {
                        (1, vec![n], s[..digits].to_owned())
                    }
                    _ => (2, Vec::new(), s.to_owned()),
                }
            }
        }
    };
    let (ka, kb) = (key(a), key(b));
    (ka.0, &ka.2, &ka.1).cmp(&(kb.0, &kb.2, &kb.1))
}

/// `2, 4-6, CR-A`: sorted, consecutive numbers collapsed into ranges.
pub fn id_ranges(ids: &[&str]) -> String {
    let mut sorted: Vec<&str> = ids.to_vec();
    sorted.sort_by(|a, b| compare_ids(a, b));
    sorted.dedup();
    let next_of = |a: &str, b: &str| -> bool {
        let (pa, la) = a.rsplit_once('.').unwrap_or(("", a));
        let (pb, lb) = b.rsplit_once('.').unwrap_or(("", b));
        pa == pb
            && matches!((la.parse::<u64>(), lb.parse::<u64>()), (Ok(x), Ok(y)) if y == x + 1)
            && (pa.is_empty() || pa.split('.').all(|p| p.parse::<u64>().is_ok()))
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && next_of(sorted[j], sorted[j + 1]) {
            j += 1;
        }
        if j > i {
            out.push(format!("{}-{}", sorted[i], sorted[j]));
        } else {
            out.push(sorted[i].to_owned());
        }
        i = j + 1;
    }
    out.join(", ")
}

fn tasks_word(n: usize) -> &'static str {
    if n == 1 { "task" } else { "tasks" }
}

fn ids_phrase(list: &TaskList, tasks: &[usize]) -> String {
    let ids: Vec<&str> = tasks.iter().map(|&t| list.tasks[t].id.as_str()).collect();
    let word = if ids.len() == 1 { "Task" } else { "Tasks" };
    format!("{word} {}", id_ranges(&ids))
}

/// Hours in an estimate like `2h`, `30m`, `1.5 hours`, `1d` (a day is 8 hours).
fn estimate_hours(estimate: &str) -> Option<f64> {
    let e = estimate.trim();
    let split = e.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let value: f64 = e[..split].parse().ok()?;
    let unit = e[split..].trim().to_ascii_lowercase();
    let factor = match unit.as_str() {
        "h" | "hr" | "hrs" | "hour" | "hours" => 1.0,
        "m" | "min" | "mins" | "minutes" => 1.0 / 60.0,
        "d" | "day" | "days" => 8.0,
        _ => return None,
    };
    Some(value * factor)
}

fn format_hours(h: f64) -> String {
    if (h - h.round()).abs() < 0.05 {
        format!("{}h", h.round())
    } else {
        format!("{h:.1}h")
    }
}

/// The human `--dry-run` text.
pub fn human(
    list: &TaskList,
    feature: &str,
    plan: &Plan,
    approval: &Approval,
    agents: &Lineup,
    verbose: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Execution Plan for {feature}:");
    if !plan.tracks.is_empty() {
        let _ = writeln!(out, "(tracks: {})", plan.tracks.join(", "));
    }
    out.push('\n');

    let task_lines = |out: &mut String, tasks: &[usize]| {
        if verbose {
            for &t in tasks {
                let task = &list.tasks[t];
                // The agent name, and the command it runs when it has its own.
                let agent = match list.agent_of(t) {
                    Some(a) => match agents.named.get(a) {
                        Some(command) => format!(" [{a}: {command}]"),
                        None => format!(" [{a}]"),
                    },
                    None => String::new(),
                };
                let _ = writeln!(out, "    {} {}{agent}", task.id, task.title);
            }
        }
    };

    if plan.nodes.is_empty() && plan.blocked.is_empty() {
        let _ = writeln!(out, "Nothing to run: every selected task is done.\n");
    }
    if let Some(first) = plan.levels.first() {
        let _ = writeln!(out, "Ready to Execute (Group 1):");
        // By track, in the order tracks first appear.
        let mut tracks: Vec<Option<&str>> = Vec::new();
        for &t in first {
            let track = list.track_of(t);
            if !tracks.contains(&track) {
                tracks.push(track);
            }
        }
        for track in tracks {
            let members: Vec<usize> = first
                .iter()
                .copied()
                .filter(|&t| list.track_of(t) == track)
                .collect();
            let prefix = track.map(|t| format!("Track {t}: ")).unwrap_or_default();
            let _ = writeln!(
                out,
                "- {prefix}{} ({} {})",
                ids_phrase(list, &members),
                members.len(),
                tasks_word(members.len())
            );
            task_lines(&mut out, &members);
        }
        out.push('\n');
    }
    if plan.levels.len() > 1 {
        let _ = writeln!(out, "Waiting on Dependencies:");
        for (k, tasks) in plan.levels.iter().enumerate().skip(1) {
            let mut on: Vec<usize> = tasks
                .iter()
                .filter_map(|&t| plan.node(t))
                .flat_map(|n| n.deps.iter().filter_map(|&d| plan.node(d).map(|d| d.level)))
                .collect();
            on.sort_unstable();
            on.dedup();
            let groups = on.iter().map(ToString::to_string).collect::<Vec<_>>();
            let word = if groups.len() == 1 { "Group" } else { "Groups" };
            let _ = writeln!(
                out,
                "- Group {}: {} (depends on {word} {})",
                k + 1,
                ids_phrase(list, tasks),
                groups.join(", ")
            );
            task_lines(&mut out, tasks);
        }
        out.push('\n');
    }

    if !plan.orderings.is_empty() {
        let _ = writeln!(
            out,
            "Ordered for Shared Files (overlap: serialize; dependency source `overlap`):"
        );
        for o in &plan.orderings {
            let _ = writeln!(
                out,
                "- Task {} after {}: both modify {}",
                list.tasks[o.task].id,
                list.tasks[o.after].id,
                o.files.join(", ")
            );
        }
        out.push('\n');
    }

    let conditional: Vec<usize> = plan
        .nodes
        .iter()
        .map(|n| n.task)
        .filter(|&t| list.tasks[t].condition().next().is_some())
        .collect();
    if !conditional.is_empty() {
        let _ = writeln!(out, "Conditional:");
        for t in conditional {
            let on: Vec<&str> = list.tasks[t]
                .condition()
                .map(|c| list.tasks[c].id.as_str())
                .collect();
            let _ = writeln!(
                out,
                "- Task {} runs only if {} requires changes",
                list.tasks[t].id,
                on.join(" or ")
            );
        }
        out.push('\n');
    }

    if !plan.blocked.is_empty() {
        let _ = writeln!(out, "Cannot Run:");
        for (t, why) in &plan.blocked {
            let id = &list.tasks[*t].id;
            let reason = match why {
                Blocked::NotRunnable => "is marked not runnable (`[~]`)".to_owned(),
                Blocked::WaitsForBlocked { on } => {
                    format!("waits for task {}, which cannot run", list.tasks[*on].id)
                }
                Blocked::OutsideTracks { waits_for } => {
                    let ids: Vec<String> = waits_for
                        .iter()
                        .map(|&w| match list.track_of(w) {
                            Some(track) => format!("{} (Track {track})", list.tasks[w].id),
                            None => list.tasks[w].id.clone(),
                        })
                        .collect();
                    format!(
                        "waits for unfinished work outside the selected tracks: {}",
                        ids.join(", ")
                    )
                }
            };
            let _ = writeln!(out, "- Task {id} {reason}");
        }
        out.push('\n');
    }

    let pending = plan.pending();
    let mut total = format!(
        "Total: {pending} {} pending ({} done), critical path {} {}, at most {} {}",
        tasks_word(pending),
        plan.done,
        plan.critical_path.len(),
        tasks_word(plan.critical_path.len()),
        plan.agents(),
        if plan.agents() == 1 {
            "agent"
        } else {
            "agents"
        }
    );
    let estimates: Vec<f64> = plan
        .nodes
        .iter()
        .filter_map(|n| {
            list.tasks[n.task]
                .estimate
                .as_deref()
                .and_then(estimate_hours)
        })
        .collect();
    if !estimates.is_empty() {
        let sum: f64 = estimates.iter().sum();
        // The longest chain by estimate: the least time the work takes with enough agents.
        let mut finish: std::collections::HashMap<usize, f64> = std::collections::HashMap::new();
        for level in &plan.levels {
            for &t in level {
                let own = list.tasks[t].estimate.as_deref().and_then(estimate_hours);
                let before = plan.node(t).map_or(0.0, |n| {
                    n.deps
                        .iter()
                        .filter_map(|d| finish.get(d))
                        .fold(0.0, |a: f64, &b| a.max(b))
                });
                finish.insert(t, before + own.unwrap_or(0.0));
            }
        }
        let longest = finish.values().fold(0.0, |a: f64, &b| a.max(b));
        let _ = write!(
            total,
            ", estimate {} of work ({} on the longest chain)",
            format_hours(sum),
            format_hours(longest)
        );
    }
    let _ = writeln!(out, "{total}");
    if plan.sequential && plan.nodes.len() > 1 {
        let _ = writeln!(
            out,
            "\nNo dependencies are declared, so tasks run one after another in document order.\n\
             To run tasks in parallel, declare `_Dependencies: …_` on tasks (`_Dependencies: None_` for\n\
             independent ones), or `(Dependencies: …)` on `### Track X: …` headings."
        );
    }
    if let Some(note) = plan.chain_note(feature) {
        let _ = writeln!(out, "\nNote: {note}.");
    }
    let approval_line = match approval {
        Approval::Approved { record } => {
            let mut s = "Approval: approved".to_owned();
            if let Some(by) = &record.by {
                let _ = write!(s, " by {by}");
            }
            if let Some(at) = &record.at {
                let _ = write!(s, " at {at}");
            }
            s
        }
        Approval::Stale { .. } => format!(
            "Approval: stale (the tasks changed since they were approved); review them, then run `cargo spec-exec approve {feature}`"
        ),
        Approval::Unapproved { .. } => format!(
            "Approval: not approved; review the tasks, then run `cargo spec-exec approve {feature}`"
        ),
    };
    let optional: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| list.tasks[n.task].optional)
        .map(|n| list.tasks[n.task].id.as_str())
        .collect();
    if !optional.is_empty() {
        let _ = writeln!(
            out,
            "\nOptional: {} {} (planned; `--skip-optional` leaves {})",
            if optional.len() == 1 { "task" } else { "tasks" },
            id_ranges(&optional),
            if optional.len() == 1 { "it" } else { "them" },
        );
    }
    if !plan.left_out.is_empty() {
        let ids: Vec<&str> = plan
            .left_out
            .iter()
            .map(|&t| list.tasks[t].id.as_str())
            .collect();
        let _ = writeln!(
            out,
            "\nLeft out (--skip-optional): {} {}",
            if ids.len() == 1 { "task" } else { "tasks" },
            id_ranges(&ids)
        );
    }
    let _ = writeln!(out, "\nFormat: {} task list", list.dialect.name());
    if verbose {
        let _ = writeln!(out, "Agent: {}", agents.describe());
    }
    let _ = writeln!(out, "{approval_line}");
    out
}

#[derive(Debug, Serialize)]
pub struct DependencyJson<'a> {
    pub id: &'a str,
    pub requires: Requirement,
    pub source: DepSource,
}

#[derive(Debug, Serialize)]
pub struct TaskJson<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub kind: &'static str,
    pub state: TaskState,
    pub track: Option<&'a str>,
    pub section: Option<&'a str>,
    /// The plan group (dependency level) it runs in; `null` when done or blocked.
    pub group: Option<usize>,
    pub line: usize,
    pub implied: bool,
    pub parent: Option<&'a str>,
    pub subtasks: Vec<&'a str>,
    pub dependencies: Vec<DependencyJson<'a>>,
    /// Tasks whose asking for changes makes this one run.
    pub condition: Vec<&'a str>,
    pub blocked: Option<String>,
    /// The agent name (`_Agent:_`, or the track's `> Primary Agent:`).
    pub agent: Option<&'a str>,
    /// What runs the task: its agent name's command from the configuration, else the default
    /// agent (`--agent`, `agent` in the configuration); `null` for a container, or when the
    /// default will be the first agent found on PATH.
    pub agent_command: Option<&'a str>,
    pub requirements: Option<&'a str>,
    pub trigger: Option<&'a str>,
    pub spec_references: Option<&'a str>,
    pub estimate: Option<&'a str>,
    pub optional: bool,
    /// spec-kit's `[P]`.
    pub parallel: bool,
    /// Files the task declares it creates or modifies.
    pub files: &'a [String],
    /// spec-workflow's `_Prompt:_`.
    pub prompt: Option<&'a str>,
    pub metadata: &'a [MetaEntry],
    pub details: &'a [String],
    pub code_blocks: &'a [CodeBlock],
}

#[derive(Debug, Serialize)]
pub struct GroupJson<'a> {
    pub group: usize,
    pub tasks: Vec<&'a str>,
    pub depends_on: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct SummaryJson<'a> {
    pub pending: usize,
    pub done: usize,
    pub runnable: usize,
    pub blocked: usize,
    pub groups: usize,
    pub critical_path: Vec<&'a str>,
    pub agents: usize,
}

/// The `plan` message of `--message-format json`.
#[derive(Debug, Serialize)]
pub struct PlanJson<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub format_version: u32,
    pub feature: &'a str,
    /// `specflow`, `kiro`, `cc-sdd`, `spec-kit` or `spec-workflow`, detected from the content.
    pub dialect: crate::spec::model::Dialect,
    pub tasks_file: String,
    pub approval: &'a Approval,
    pub sequential: bool,
    pub tracks: &'a [String],
    pub max_agents: usize,
    pub summary: SummaryJson<'a>,
    pub groups: Vec<GroupJson<'a>>,
    pub tasks: Vec<TaskJson<'a>>,
    pub warnings: Vec<&'a Diagnostic>,
    /// Advice that is not a warning: a plan that is one long chain names `deps`; the orders
    /// `--overlap serialize` added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

pub fn json<'a>(
    list: &'a TaskList,
    feature: &'a str,
    plan: &'a Plan,
    approval: &'a Approval,
    agents: &'a Lineup,
) -> PlanJson<'a> {
    let id = |t: usize| list.tasks[t].id.as_str();
    let tasks = (0..list.tasks.len())
        .map(|i| {
            let t = &list.tasks[i];
            let blocked = plan
                .blocked
                .iter()
                .find(|(b, _)| *b == i)
                .map(|(_, why)| match why {
                    Blocked::NotRunnable => "not-runnable".to_owned(),
                    Blocked::WaitsForBlocked { .. } => "waits-for-blocked".to_owned(),
                    Blocked::OutsideTracks { .. } => "outside-tracks".to_owned(),
                });
            TaskJson {
                id: &t.id,
                title: &t.title,
                kind: if t.is_container() {
                    "container"
                } else {
                    "task"
                },
                state: list.state(i),
                track: list.track_of(i),
                section: t.section.map(|s| list.sections[s].title.as_str()),
                group: plan.node(i).map(|n| n.level),
                line: t.line,
                implied: t.is_implied(),
                parent: t.parent.map(id),
                subtasks: t.children.iter().map(|&c| id(c)).collect(),
                dependencies: t
                    .deps
                    .iter()
                    .map(|e| DependencyJson {
                        id: id(e.on),
                        requires: e.requirement,
                        source: e.source,
                    })
                    .collect(),
                condition: t.condition().map(id).collect(),
                blocked,
                agent: list.agent_of(i),
                agent_command: if t.is_container() {
                    None
                } else {
                    agents.command_of(list.agent_of(i))
                },
                requirements: t.requirements.as_deref(),
                trigger: t.trigger.as_deref(),
                spec_references: t.spec_references.as_deref(),
                estimate: t.estimate.as_deref(),
                optional: t.optional,
                parallel: t.parallel,
                files: &t.files,
                prompt: t.prompt.as_deref(),
                metadata: &t.metadata,
                details: &t.details,
                code_blocks: &t.code_blocks,
            }
        })
        .collect();
    let groups = plan
        .levels
        .iter()
        .enumerate()
        .map(|(k, tasks)| {
            let mut on: Vec<usize> = tasks
                .iter()
                .filter_map(|&t| plan.node(t))
                .flat_map(|n| n.deps.iter().filter_map(|&d| plan.node(d).map(|d| d.level)))
                .collect();
            on.sort_unstable();
            on.dedup();
            GroupJson {
                group: k + 1,
                tasks: tasks.iter().map(|&t| id(t)).collect(),
                depends_on: on,
            }
        })
        .collect();
    PlanJson {
        kind: "plan",
        format_version: FORMAT_VERSION,
        feature,
        dialect: list.dialect,
        tasks_file: list.source.display_path.display().to_string(),
        approval,
        sequential: plan.sequential,
        tracks: &plan.tracks,
        max_agents: plan.max_agents,
        summary: SummaryJson {
            pending: plan.pending(),
            done: plan.done,
            runnable: plan.nodes.len(),
            blocked: plan.blocked.len(),
            groups: plan.levels.len(),
            critical_path: plan.critical_path.iter().map(|&t| id(t)).collect(),
            agents: plan.agents(),
        },
        groups,
        tasks,
        warnings: list
            .diagnostics
            .iter()
            .filter(|d| !d.is_error())
            .chain(&plan.warnings)
            .collect(),
        notes: plan
            .chain_note(feature)
            .into_iter()
            .chain(plan.orderings_note(list))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_collapse() {
        assert_eq!(id_ranges(&["2", "4", "5", "6"]), "2, 4-6");
        assert_eq!(
            id_ranges(&["11", "12", "13", "14", "15", "22"]),
            "11-15, 22"
        );
        assert_eq!(
            id_ranges(&["2.1", "2.2", "10", "CR-A", "3"]),
            "2.1-2.2, 3, 10, CR-A"
        );
        assert_eq!(id_ranges(&["T001", "T002"]), "T001, T002");
        assert_eq!(id_ranges(&["9", "10"]), "9-10");
    }

    #[test]
    fn estimates() {
        assert_eq!(estimate_hours("2h"), Some(2.0));
        assert_eq!(estimate_hours("30m"), Some(0.5));
        assert_eq!(estimate_hours("1 day"), Some(8.0));
        assert_eq!(estimate_hours("1 fortnight"), None);
        assert_eq!(estimate_hours("1d"), Some(8.0));
        assert_eq!(format_hours(2.5), "2.5h");
    }
}
