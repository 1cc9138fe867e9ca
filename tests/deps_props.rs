//! Property tests for `deps`' core: random Kiro-style task lists (nested or flat sub-tasks,
//! details or none, wrapped titles, done tasks, LF or CRLF, with or without a final line
//! ending) and random dependency DAGs written into them read back as exactly that DAG, and the
//! edits only add lines.

use std::collections::BTreeSet;

use cargo_spec_exec::spec::{
    self, TaskList,
    edit::{self, byte_lines},
    inferred::{self, Answer, AnsweredTask, Options},
    model::TaskState,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// A small deterministic generator driven by one proptest seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A random Kiro list.
fn kiro_list(rng: &mut Rng) -> Vec<u8> {
    let eol = if rng.chance(30) { "\r\n" } else { "\n" };
    let mut lines: Vec<String> = vec!["# Implementation Plan".into(), String::new()];
    let majors = 1 + rng.below(5);
    for m in 1..=majors {
        let subs = if rng.chance(50) { 0 } else { 1 + rng.below(4) };
        let nested = rng.chance(60);
        let mark = |rng: &mut Rng| if rng.chance(20) { 'x' } else { ' ' };
        let details = |rng: &mut Rng, indent: &str, lines: &mut Vec<String>| {
            let marker = if rng.chance(30) { '*' } else { '-' };
            for k in 0..rng.below(3) {
                lines.push(format!("{indent}{marker} Detail {k}"));
            }
            if rng.chance(30) {
                lines.push(format!("{indent}{marker} _Requirements: 1.{m}_"));
            }
        };
        if subs == 0 {
            lines.push(format!("- [{}] {m}. Task {m}", mark(rng)));
            if rng.chance(20) {
                lines.push("  with a wrapped title".into());
            }
            details(rng, "  ", &mut lines);
        } else {
            lines.push(format!("- [ ] {m}. Part {m}"));
            for k in 1..=subs {
                let indent = if nested { "  " } else { "" };
                lines.push(format!("{indent}- [{}] {m}.{k} Step {k}", mark(rng)));
                details(rng, &format!("{indent}    "), &mut lines);
            }
        }
        if rng.chance(50) {
            lines.push(String::new());
        }
    }
    let mut text = lines.join(eol);
    if rng.chance(70) {
        text.push_str(eol);
    }
    text.into_bytes()
}

/// Each pending task's dependencies as read, sorted.
fn read_dag(l: &TaskList) -> Vec<(String, BTreeSet<String>)> {
    inferred::pending(l)
        .into_iter()
        .map(|i| {
            let d = l.tasks[i]
                .deps
                .iter()
                .map(|e| l.tasks[e.on].id.clone())
                .collect();
            (l.tasks[i].id.clone(), d)
        })
        .collect()
}

proptest! {
    #![proptest_config(Config { cases: 200, ..Config::default() })]

    #[test]
    fn a_random_dag_reads_back_exactly(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let bytes = kiro_list(&mut rng);
        let list = spec::parse_bytes("tasks.md", bytes.clone());
        prop_assert!(!list.has_errors(), "{:?}", list.diagnostics);
        let leaves: Vec<usize> = list.leaves().collect();
        // A random order of the leaves: a task may wait only for tasks earlier in it.
        let mut rank: Vec<usize> = (0..leaves.len()).collect();
        for k in (1..rank.len()).rev() {
            rank.swap(k, rng.below(k + 1));
        }
        let pending = inferred::pending(&list);
        let mut tasks = Vec::new();
        let mut expected = Vec::new();
        let mut previous: Option<usize> = None;
        for &i in &pending {
            let pos = leaves.iter().position(|&l| l == i).unwrap();
            if rng.chance(15) {
                // Left out of the answer: it keeps its place after the pending task before it.
                let want = previous.map(|p| list.tasks[p].id.clone()).into_iter().collect();
                expected.push((list.tasks[i].id.clone(), want));
            } else {
                let deps: Vec<String> = (0..leaves.len())
                    .filter(|&k| rank[k] < rank[pos] && rng.chance(35))
                    .map(|k| list.tasks[leaves[k]].id.clone())
                    .collect();
                expected.push((list.tasks[i].id.clone(), deps.iter().cloned().collect()));
                tasks.push(AnsweredTask { id: list.tasks[i].id.clone(), depends_on: deps, reason: None });
            }
            previous = Some(i);
        }
        // Whatever was missing could close a cycle with the answered edges: then it is refused.
        let result = inferred::infer(&list, &Answer { tasks }, &Options::default());
        let inferred = match result {
            Ok(i) => i,
            Err(e) => {
                prop_assert!(e.iter().all(|d| d.message.contains("cycle")), "{:?}", e);
                return Ok(());
            }
        };
        let again = spec::parse_bytes("tasks.md", inferred.bytes.clone());
        prop_assert!(!again.has_errors());
        prop_assert_eq!(read_dag(&again), expected);
        // Only lines were added: without them, the bytes are the original ones.
        prop_assert!(inferred.edits.iter().all(|e| !e.replace));
        let added: BTreeSet<Vec<u8>> = inferred.edits.iter().map(|e| e.text.clone()).collect();
        let mut back = Vec::new();
        for (s, c, e) in byte_lines(&inferred.bytes) {
            if !added.contains(&inferred.bytes[s..c]) {
                back.extend_from_slice(&inferred.bytes[s..e]);
            }
        }
        let eol = edit::line_ending(&bytes);
        if !bytes.ends_with(eol) && back.ends_with(eol) {
            back.truncate(back.len() - eol.len());
        }
        prop_assert_eq!(back, bytes.clone());
        // Every added line ends as the file's lines do.
        let crlf = bytes.windows(2).any(|w| w == b"\r\n");
        let bare_lf = inferred.bytes.iter().enumerate().any(|(k, &b)| b == b'\n' && (k == 0 || inferred.bytes[k - 1] != b'\r'));
        prop_assert!(!crlf || !bare_lf);
        // Done tasks are never answered for, and stay done.
        for (k, t) in again.tasks.iter().enumerate() {
            if let Some(j) = list.find(&t.id) {
                prop_assert_eq!(list.tasks[j].state == TaskState::Done, again.tasks[k].state == TaskState::Done);
            }
        }
    }
}
