//! Property tests: random dependency DAGs, written as specflow task lists in a shuffled order,
//! parse back to the same edges, and plan into exact dependency levels and a longest-chain
//! critical path.

use std::collections::{BTreeSet, HashMap};

use cargo_spec_exec::plan::{self, Plan};
use cargo_spec_exec::spec::{self, TaskList, model::TaskState};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// A task's box as generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GenState {
    Pending,
    /// `[-]`: planned as pending, with a warning.
    InProgress,
    /// `[x]`, or `[X]` when the flag is set.
    Done {
        upper: bool,
    },
}

impl GenState {
    fn is_done(self) -> bool {
        matches!(self, GenState::Done { .. })
    }

    fn mark(self) -> char {
        match self {
            GenState::Pending => ' ',
            GenState::InProgress => '-',
            GenState::Done { upper: false } => 'x',
            GenState::Done { upper: true } => 'X',
        }
    }
}

/// A generated task list. Tasks are indexed in a topological order (`deps[i]` are all `< i`);
/// `order` is the document order, a shuffle of that.
#[derive(Debug, Clone)]
struct Gen {
    ids: Vec<String>,
    states: Vec<GenState>,
    deps: Vec<Vec<usize>>,
    /// `order[k]` is the task written k-th in the file.
    order: Vec<usize>,
    /// Seed for cosmetic choices: phrase forms, details, headings, blank lines.
    style: u64,
}

/// splitmix64: deterministic cosmetic choices from the case's seed.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

const PREFIXES: &[&str] = &["CR", "PR", "QA", "RW", "DOC"];

/// `A`, `B`, …, `Z`, `AA`, `AB`, …
fn letters(mut k: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (k % 26) as u8);
        if k < 26 {
            break;
        }
        k = k / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Ids: a shuffle of `1..=n`, some replaced by letter ids (`CR-A`, `PR-B`, …).
fn make_ids(numbers: &[usize], alpha: &[bool]) -> Vec<String> {
    let mut next_alpha = 0;
    numbers
        .iter()
        .zip(alpha)
        .map(|(&num, &is_alpha)| {
            if is_alpha {
                let k = next_alpha;
                next_alpha += 1;
                format!(
                    "{}-{}",
                    PREFIXES[k % PREFIXES.len()],
                    letters(k / PREFIXES.len())
                )
            } else {
                num.to_string()
            }
        })
        .collect()
}

fn gen_state() -> impl Strategy<Value = GenState> {
    prop_oneof![
        5 => Just(GenState::Pending),
        1 => Just(GenState::InProgress),
        3 => Just(GenState::Done { upper: false }),
        1 => Just(GenState::Done { upper: true }),
    ]
}

/// Ids (in topological index order), states and document order for `n` tasks.
fn gen_common(
    n: usize,
    ids_follow_document: bool,
) -> impl Strategy<Value = (Vec<String>, Vec<GenState>, Vec<usize>, u64)> {
    (
        Just((1..=n).collect::<Vec<usize>>()).prop_shuffle(),
        prop::collection::vec(prop::bool::weighted(0.15), n),
        prop::collection::vec(gen_state(), n),
        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        any::<u64>(),
    )
        .prop_map(move |(numbers, alpha, states, order, style)| {
            let mut ids = make_ids(&numbers, &alpha);
            if ids_follow_document {
                // Number the tasks 1..=n in the order they are written.
                let mut by_position = vec![0; n];
                for (k, &t) in order.iter().enumerate() {
                    by_position[t] = k;
                }
                let mut numeric: Vec<usize> = (0..n).filter(|&t| !alpha[t]).collect();
                numeric.sort_by_key(|&t| by_position[t]);
                for (k, t) in numeric.into_iter().enumerate() {
                    ids[t] = (k + 1).to_string();
                }
            }
            (ids, states, order, style)
        })
}

fn gen_dag() -> impl Strategy<Value = Gen> {
    (
        1usize..40,
        prop_oneof![Just(0.05), Just(0.15), Just(0.4)],
        any::<bool>(),
    )
        .prop_flat_map(|(n, density, ids_follow_document)| {
            (
                prop::collection::vec(prop::collection::vec(prop::bool::weighted(density), n), n),
                gen_common(n, ids_follow_document),
            )
        })
        .prop_map(|(matrix, (ids, states, order, style))| {
            let deps = matrix
                .iter()
                .enumerate()
                .map(|(i, row)| (0..i).filter(|&j| row[j]).collect())
                .collect();
            Gen {
                ids,
                states,
                deps,
                order,
                style,
            }
        })
}

/// Tasks without dependency information. With `done_first`, the done tasks are the first ones
/// written (work done in order); otherwise they are anywhere.
fn gen_flat(done_first: bool) -> impl Strategy<Value = Gen> {
    (1usize..30, any::<bool>())
        .prop_flat_map(|(n, ids_follow_document)| gen_common(n, ids_follow_document))
        .prop_map(move |(ids, mut states, order, style)| {
            if done_first {
                let done = states.iter().filter(|s| s.is_done()).count();
                let mut open: Vec<GenState> =
                    states.iter().copied().filter(|s| !s.is_done()).collect();
                open.reverse();
                for (k, &t) in order.iter().enumerate() {
                    states[t] = if k < done {
                        GenState::Done { upper: false }
                    } else {
                        open.pop().unwrap_or(GenState::Pending)
                    };
                }
            }
            Gen {
                deps: vec![Vec::new(); ids.len()],
                ids,
                states,
                order,
                style,
            }
        })
}

const NOUNS: &[&str] = &[
    "config loader",
    "task parser",
    "plan renderer",
    "worktree manager",
    "agent runner",
    "review gate",
    "CLI",
    "error report",
];

const DETAILS: &[&str] = &[
    "Write unit tests for the happy path",
    "Handle `NotFound` and permission errors",
    "Keep the public API small: one `fn load(path: &Path) -> Result<Config>`",
    "Document the behaviour in the README",
    "Follow the existing error style (`thiserror`, one variant per cause)",
    "Benchmark against the 1 MB fixture",
    "_Requirements: 1.1, 2.3_",
    "_Spec References: design.md#architecture_",
    "_Agent: rust-developer_",
    "_Boundary: src/spec/ only_",
];

/// The dependency phrase for `deps` (topological indices), written with ids.
fn dep_phrase(g: &Gen, deps: &[usize], rng: &mut Rng) -> String {
    if deps.is_empty() {
        return rng
            .pick(&["None", "None", "None", "No dependencies", "none"])
            .to_owned();
    }
    let wanted: BTreeSet<usize> = deps.iter().copied().collect();
    // Every numeric id in the file, sorted by number, with whether it is wanted.
    let mut numeric: Vec<(u64, usize)> = (0..g.ids.len())
        .filter_map(|t| g.ids[t].parse::<u64>().ok().map(|v| (v, t)))
        .collect();
    numeric.sort_unstable();
    let mut pieces: Vec<String> = Vec::new();
    let mut k = 0;
    while k < numeric.len() {
        if !wanted.contains(&numeric[k].1) {
            k += 1;
            continue;
        }
        // A run of consecutive existing numeric ids, all wanted: a range names exactly them.
        let mut end = k;
        while end + 1 < numeric.len() && wanted.contains(&numeric[end + 1].1) {
            end += 1;
        }
        if end > k && rng.chance(60) {
            let (lo, hi) = (numeric[k].0, numeric[end].0);
            let piece = match rng.below(6) {
                0 => format!("{lo} through {hi}"),
                1 => format!("{lo} – {hi}"),
                _ => format!("{lo}-{hi}"),
            };
            pieces.push(piece);
        } else {
            for &(v, _) in &numeric[k..=end] {
                pieces.push(v.to_string());
            }
        }
        k = end + 1;
    }
    for &t in deps {
        if g.ids[t].parse::<u64>().is_err() {
            pieces.push(g.ids[t].clone());
        }
    }
    rng.shuffle(&mut pieces);
    let list = match rng.below(4) {
        0 if pieces.len() == 2 => format!("{} and {}", pieces[0], pieces[1]),
        1 => pieces.join(","),
        _ => pieces.join(", "),
    };
    let word = if deps.len() == 1 { "Task" } else { "Tasks" };
    if rng.chance(85) {
        format!("{word} {list}")
    } else {
        list
    }
}

/// Writes the task list. With `with_deps`, every task says its dependencies (`None` included).
fn render(g: &Gen, with_deps: bool) -> String {
    let mut rng = Rng(g.style);
    let mut out = String::new();
    if rng.chance(20) {
        out.push_str("---\nfeature: generated\nstatus: draft\n---\n\n");
    }
    out.push_str("# Implementation Plan\n\n");
    if rng.chance(50) {
        out.push_str("Tasks for the generated feature. Each task names what it waits for.\n\n");
    }
    let mut phase = 0;
    for (k, &t) in g.order.iter().enumerate() {
        if k == 0 || rng.chance(10) {
            phase += 1;
            out.push_str(&format!(
                "\n## Phase {phase}: {}\n\n",
                rng.pick(&["Setup", "Core", "Integration", "Polish"])
            ));
        } else if rng.chance(30) {
            out.push('\n');
        }
        let id = &g.ids[t];
        let sep = if rng.chance(80) { "." } else { ":" };
        let noun = rng.pick(NOUNS);
        out.push_str(&format!(
            "- [{}] {id}{sep} **Build the {noun}**\n",
            g.states[t].mark()
        ));
        let mut bullets: Vec<String> = (0..rng.below(4))
            .map(|_| rng.pick(DETAILS).to_owned())
            .collect();
        if with_deps {
            let at = rng.below(bullets.len() + 1);
            bullets.insert(
                at,
                format!("_Dependencies: {}_", dep_phrase(g, &g.deps[t], &mut rng)),
            );
        }
        for b in &bullets {
            out.push_str(&format!("  - {b}\n"));
        }
        if rng.chance(10) {
            out.push_str("\n  ```rust\n  // - [ ] 99. **Not a task**\n  fn main() {}\n  ```\n");
        }
    }
    out
}

fn parse(text: &str) -> TaskList {
    spec::parse_bytes("tasks.md", text.as_bytes().to_vec())
}

fn build(list: &TaskList) -> Plan {
    plan::build(
        list,
        &plan::Options {
            tracks: vec![],
            max_agents: 6,
            skip_optional: false,
            ..plan::Options::default()
        },
    )
    .expect("plan builds")
}

fn messages(list: &TaskList) -> Vec<String> {
    list.diagnostics.iter().map(|d| format!("{d:?}")).collect()
}

/// Checks the parse of `g`: no errors, only the expected warnings, the tasks in document order.
/// Returns the list index of every generated task.
fn check_parse(g: &Gen, list: &TaskList, text: &str) -> Result<Vec<usize>, TestCaseError> {
    prop_assert!(!list.has_errors(), "errors: {:#?}\n{text}", messages(list));
    let in_progress = g
        .states
        .iter()
        .filter(|s| **s == GenState::InProgress)
        .count();
    prop_assert_eq!(
        list.diagnostics.len(),
        in_progress,
        "only the `[-]` warnings expected: {:#?}\n{}",
        messages(list),
        text
    );
    prop_assert_eq!(list.tasks.len(), g.ids.len(), "{}", text);
    let written: Vec<&str> = g.order.iter().map(|&t| g.ids[t].as_str()).collect();
    let parsed: Vec<&str> = list.tasks.iter().map(|t| t.id.as_str()).collect();
    prop_assert_eq!(parsed, written, "tasks in document order");
    let mut index = vec![0; g.ids.len()];
    for (k, &t) in g.order.iter().enumerate() {
        index[t] = k;
        let want = match g.states[t] {
            GenState::Pending => TaskState::Pending,
            GenState::InProgress => TaskState::InProgress,
            GenState::Done { .. } => TaskState::Done,
        };
        prop_assert_eq!(list.tasks[k].state, want, "state of {}", &g.ids[t]);
    }
    Ok(index)
}

/// Longest chain of pending tasks, each waiting directly for the one before (in tasks).
fn longest_pending_chain(g: &Gen) -> usize {
    let mut chain = vec![0usize; g.ids.len()];
    for i in 0..g.ids.len() {
        if g.states[i].is_done() {
            continue;
        }
        chain[i] = 1 + g.deps[i].iter().map(|&d| chain[d]).max().unwrap_or(0);
    }
    chain.into_iter().max().unwrap_or(0)
}

fn check_dag(g: &Gen) -> Result<(), TestCaseError> {
    let text = render(g, true);
    let list = parse(&text);
    let index = check_parse(g, &list, &text)?;
    prop_assert!(list.has_dependency_info);
    let n = g.ids.len();
    let mut topo = vec![0; n];
    for (t, &li) in index.iter().enumerate() {
        topo[li] = t;
    }

    // The edges are exactly the generated dependencies.
    for t in 0..n {
        let edges: BTreeSet<usize> = list.tasks[index[t]].deps.iter().map(|e| e.on).collect();
        let want: BTreeSet<usize> = g.deps[t].iter().map(|&d| index[d]).collect();
        prop_assert_eq!(
            &edges,
            &want,
            "edges of task {} (list indices)\n{}",
            &g.ids[t],
            &text
        );
    }

    let plan = build(&list);
    prop_assert!(!plan.sequential);
    prop_assert!(plan.blocked.is_empty(), "blocked: {:?}", plan.blocked);
    let done = g.states.iter().filter(|s| s.is_done()).count();
    prop_assert_eq!(plan.done, done);

    // The nodes are the pending tasks, in document order; done tasks are not nodes.
    let node_tasks: Vec<usize> = plan.nodes.iter().map(|nd| nd.task).collect();
    let pending: Vec<usize> = (0..n).filter(|&li| !g.states[topo[li]].is_done()).collect();
    prop_assert_eq!(&node_tasks, &pending, "nodes are the pending tasks");

    let level_of: HashMap<usize, usize> = plan.nodes.iter().map(|nd| (nd.task, nd.level)).collect();
    for node in &plan.nodes {
        let t = topo[node.task];
        let pending_deps: BTreeSet<usize> = g.deps[t]
            .iter()
            .filter(|&&d| !g.states[d].is_done())
            .map(|&d| index[d])
            .collect();
        let node_deps: BTreeSet<usize> = node.deps.iter().copied().collect();
        prop_assert_eq!(&node_deps, &pending_deps, "deps of node {}", &g.ids[t]);
        let mut highest = 0;
        for d in &pending_deps {
            let Some(&l) = level_of.get(d) else {
                return Err(TestCaseError::fail(format!(
                    "pending dependency {} of {} is not a node",
                    list.tasks[*d].id, g.ids[t]
                )));
            };
            prop_assert!(
                l < node.level,
                "{} (level {}) waits for {} (level {l})",
                &g.ids[t],
                node.level,
                &list.tasks[*d].id
            );
            highest = highest.max(l);
        }
        prop_assert_eq!(node.level, highest + 1, "level of {}", &g.ids[t]);
    }

    // Levels hold their nodes, in document order.
    let depth = plan.nodes.iter().map(|nd| nd.level).max().unwrap_or(0);
    prop_assert_eq!(plan.levels.len(), depth);
    for (l, tasks) in plan.levels.iter().enumerate() {
        let want: Vec<usize> = plan
            .nodes
            .iter()
            .filter(|nd| nd.level == l + 1)
            .map(|nd| nd.task)
            .collect();
        prop_assert_eq!(tasks, &want, "level {}", l + 1);
    }

    // The critical path is a longest chain of pending tasks.
    let path = &plan.critical_path;
    prop_assert_eq!(
        path.len(),
        longest_pending_chain(g),
        "critical path {:?}",
        path
    );
    for &p in path {
        prop_assert!(level_of.contains_key(&p), "path entry {p} is not a node");
    }
    for pair in path.windows(2) {
        let (before, after) = (topo[pair[0]], topo[pair[1]]);
        prop_assert!(
            g.deps[after].contains(&before),
            "{} follows {} on the critical path but does not wait for it",
            &g.ids[after],
            &g.ids[before]
        );
    }
    Ok(())
}

fn check_flat(g: &Gen) -> Result<(), TestCaseError> {
    let text = render(g, false);
    let list = parse(&text);
    check_parse(g, &list, &text)?;
    prop_assert!(!list.has_dependency_info);
    let plan = build(&list);
    prop_assert!(plan.sequential);
    let pending: Vec<usize> = (0..list.tasks.len())
        .filter(|&li| list.tasks[li].state != TaskState::Done)
        .collect();
    let one_each: Vec<Vec<usize>> = pending.iter().map(|&li| vec![li]).collect();
    prop_assert_eq!(&plan.levels, &one_each, "one task per level\n{}", &text);
    prop_assert_eq!(&plan.critical_path, &pending);
    Ok(())
}

/// 128 cases; `PROPTEST_CASES=N` runs more.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_dags_plan_into_exact_levels(g in gen_dag()) {
        check_dag(&g)?;
    }

    #[test]
    fn no_dependency_info_runs_in_document_order(g in gen_flat(true)) {
        check_flat(&g)?;
    }

    #[test]
    fn no_dependency_info_runs_in_document_order_around_done_tasks(g in gen_flat(false)) {
        check_flat(&g)?;
    }
}

/// The smallest case of a sequential list around a done task: README says a list without
/// dependency information runs "in document order, one task after another", so 3 waits for 1
/// even though the done task 2 stands between them.
#[test]
fn done_task_in_the_middle_of_a_sequential_list() {
    let list = parse("# Tasks\n\n- [ ] 1. **First**\n- [x] 2. **Second**\n- [ ] 3. **Third**\n");
    assert!(!list.has_errors(), "{:#?}", messages(&list));
    let plan = build(&list);
    assert!(plan.sequential);
    assert_eq!(plan.levels, vec![vec![0], vec![2]]);
}
