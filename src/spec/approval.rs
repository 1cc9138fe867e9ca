//! Approval of a task list, recorded in its front matter and pinned to its content.
//!
//! ```text
//! ---
//! spec-exec-approved: 5b0c…   (digest of the list, checkbox states and line endings ignored)
//! spec-exec-approved-by: Jane Doe <jane@example.com>
//! spec-exec-approved-at: 2026-11-25T10:00:00Z
//! ---
//! ```
//!
//! Ticking boxes keeps the approval; editing any other text after the front matter voids it.
//! Approving inserts or replaces only these lines: every other byte of the file stays.

use serde::Serialize;

use super::model::TaskList;

const KEY: &str = "spec-exec-approved";
const KEY_BY: &str = "spec-exec-approved-by";
const KEY_AT: &str = "spec-exec-approved-at";

/// An approval as recorded in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Approval {
    /// Approved, and the list has not changed since.
    Approved { record: Record },
    /// Approved once, but the tasks were edited since.
    Stale { record: Record, digest: String },
    /// Never approved.
    Unapproved { digest: String },
}

impl Approval {
    pub fn is_approved(&self) -> bool {
        matches!(self, Approval::Approved { .. })
    }

    /// A few words for tables: `approved`, `stale`, `not approved`.
    pub fn label(&self) -> &'static str {
        match self {
            Approval::Approved { .. } => "approved",
            Approval::Stale { .. } => "stale",
            Approval::Unapproved { .. } => "not approved",
        }
    }
}

/// Offset in the original bytes where the body (everything after the front matter) starts.
fn body_start(list: &TaskList) -> usize {
    let bom = if list.source.bytes.starts_with(crate::source::BOM) {
        crate::source::BOM.len()
    } else {
        0
    };
    list.front_matter.as_ref().map_or(bom, |fm| {
        let end = list.source.byte_offset(fm.end);
        // The front matter's closing line ending belongs to it.
        let bytes = &list.source.bytes;
        if bytes[end..].starts_with(b"\r\n") {
            end + 2
        } else if bytes[end..].starts_with(b"\n") {
            end + 1
        } else {
            end
        }
    })
}

/// The digest approval is pinned to: the body with every checkbox state blanked and `\r\n`
/// read as `\n`, hashed as git hashes a blob (SHA-1).
pub fn digest(list: &TaskList) -> String {
    let start = body_start(list);
    let mut body = list.source.bytes[start..].to_vec();
    for &offset in &list.checkbox_bytes {
        if offset >= start {
            body[offset - start] = b' ';
        }
    }
    let mut normalized = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        normalized.push(body[i]);
        i += 1;
    }
    match git2::Oid::hash_object(git2::ObjectType::Blob, &normalized) {
        Ok(oid) => oid.to_string(),
        Err(e) => panic!("hashing a buffer in memory cannot fail: {e}"),
    }
}

/// The approval lines in the front matter, if any.
pub fn record(list: &TaskList) -> Option<Record> {
    let fm = list.front_matter.as_ref()?;
    let text = &list.source.text[fm.clone()];
    let mut record: Option<Record> = None;
    let mut by = None;
    let mut at = None;
    for line in text.lines() {
        // `key: value` (YAML) or `key = "value"` (TOML, between `+++`).
        let Some((key, value)) = line.split_once([':', '=']) else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']).to_owned();
        match key.trim() {
            KEY => {
                record = Some(Record {
                    digest: value,
                    by: None,
                    at: None,
                });
            }
            KEY_BY => by = Some(value),
            KEY_AT => at = Some(value),
            _ => {}
        }
    }
    record.map(|r| Record { by, at, ..r })
}

pub fn state(list: &TaskList) -> Approval {
    let digest = digest(list);
    match record(list) {
        Some(record) if record.digest == digest => Approval::Approved { record },
        Some(record) => Approval::Stale { record, digest },
        None => Approval::Unapproved { digest },
    }
}

/// The file's bytes with an approval recorded for its current content. Only the approval lines
/// are inserted or replaced.
pub fn approved_bytes(list: &TaskList, by: &str, at: &str) -> Vec<u8> {
    let bytes = &list.source.bytes;
    let eol: &[u8] = if list.source.uses_crlf() {
        b"\r\n"
    } else {
        b"\n"
    };
    // TOML front matter (`+++`) gets TOML lines.
    let toml = list
        .front_matter
        .as_ref()
        .is_some_and(|fm| list.source.text[fm.clone()].starts_with("+++"));
    let mut lines = Vec::new();
    for (key, value) in [
        (KEY, digest(list)),
        (KEY_BY, by.to_owned()),
        (KEY_AT, at.to_owned()),
    ] {
        if value.is_empty() {
            continue;
        }
        lines.extend_from_slice(key.as_bytes());
        if toml {
            lines.extend_from_slice(b" = ");
            lines.extend_from_slice(toml_string(&value).as_bytes());
        } else {
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(yaml_scalar(&value).as_bytes());
        }
        lines.extend_from_slice(eol);
    }
    let mut out = Vec::with_capacity(bytes.len() + lines.len() + 8);
    match &list.front_matter {
        None => {
            let bom = if bytes.starts_with(crate::source::BOM) {
                crate::source::BOM.len()
            } else {
                0
            };
            out.extend_from_slice(&bytes[..bom]);
            out.extend_from_slice(b"---");
            out.extend_from_slice(eol);
            out.extend_from_slice(&lines);
            out.extend_from_slice(b"---");
            out.extend_from_slice(eol);
            out.extend_from_slice(&bytes[bom..]);
        }
        Some(fm) => {
            // Keep every front matter line but ours; put ours right before the closing `---`.
            let start = list.source.byte_offset(fm.start);
            let end = list.source.byte_offset(fm.end);
            let block = &bytes[start..end];
            let closing = block
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(block.len(), |i| i + 1);
            out.extend_from_slice(&bytes[..start]);
            for line in block[..closing].split_inclusive(|&b| b == b'\n') {
                let key = line
                    .split(|&b| b == b':' || b == b'=')
                    .next()
                    .unwrap_or(b"");
                let key = String::from_utf8_lossy(key);
                if ![KEY, KEY_BY, KEY_AT].contains(&key.trim()) {
                    out.extend_from_slice(line);
                }
            }
            out.extend_from_slice(&lines);
            out.extend_from_slice(&block[closing..]);
            out.extend_from_slice(&bytes[end..]);
        }
    }
    out
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes a value when YAML would misread it.
fn yaml_scalar(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_alphanumeric() || " -_.@<>+".contains(c))
        && !value.starts_with(['-', '<', ' '])
        && !value.ends_with(' ');
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_bytes;

    #[test]
    fn toml_front_matter_gets_toml_lines() {
        let text = "+++\ntitle = \"x\"\n+++\n- [ ] 1. A\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        assert!(list.front_matter.is_some());
        let new = approved_bytes(&list, "A \"B\" <a@b>", "2026-01-01T00:00:00Z");
        let new_text = String::from_utf8(new.clone()).unwrap();
        assert!(
            new_text.starts_with("+++\ntitle = \"x\"\nspec-exec-approved = \""),
            "{new_text}"
        );
        assert!(
            new_text.contains("spec-exec-approved-by = \"A \\\"B\\\" <a@b>\"\n"),
            "{new_text}"
        );
        assert!(new_text.ends_with("+++\n- [ ] 1. A\n"), "{new_text}");
        assert!(state(&parse_bytes("tasks.md", new)).is_approved());
    }
}
