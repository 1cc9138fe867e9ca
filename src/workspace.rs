//! The Cargo workspace the tool runs in: its root (where specs and git live), its target
//! directory (where earlier versions kept run state, now under git's directory), and the
//! `spec-exec` configuration of its root manifest.

use std::path::{Path, PathBuf};

use cargo_metadata::MetadataCommand;

use crate::config::{Config, TableSource};
use crate::error::{Error, Result};
use crate::source::display_path;

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// The root manifest.
    pub manifest: PathBuf,
    pub config: Config,
}

impl Workspace {
    /// Asks cargo (the `$CARGO` cargo when run as a cargo subcommand) about the workspace.
    pub fn load(manifest_path: Option<&Path>) -> Result<Workspace> {
        Workspace::load_with(manifest_path, |_| {})
    }

    /// As [`Workspace::load`], telling `found` the workspace's root as soon as cargo names it,
    /// before its configuration is read: errors in the configuration can then name their file
    /// from it.
    pub fn load_with(manifest_path: Option<&Path>, found: impl FnOnce(&Path)) -> Result<Workspace> {
        let mut cmd = MetadataCommand::new();
        // Its output is JSON; the user's colour setting (valid or not) is ours to judge.
        cmd.no_deps().env("CARGO_TERM_COLOR", "never");
        if let Some(path) = manifest_path {
            if !path.exists() {
                return Err(Error::user_with_help(
                    format!("manifest `{}` does not exist", path.display()),
                    "pass the path of a Cargo.toml with --manifest-path",
                ));
            }
            cmd.manifest_path(path);
        }
        let metadata = cmd.exec().map_err(|e| {
            let detail = match &e {
                cargo_metadata::Error::CargoMetadata { stderr } => stderr
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.trim_start_matches("error: "))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            Error::user_with_help(
                format!("could not read the Cargo workspace: {detail}"),
                "run inside a Cargo workspace, or pass --manifest-path path/to/Cargo.toml",
            )
        })?;
        let root = metadata.workspace_root.clone().into_std_path_buf();
        found(&root);
        let manifest = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).ok();
        let shown = display_path(&manifest, &root);

        let workspace_table = metadata.workspace_metadata.get("spec-exec");
        let root_package = metadata
            .packages
            .iter()
            .find(|p| p.manifest_path.as_std_path() == manifest);
        let package_table = root_package.and_then(|p| p.metadata.get("spec-exec"));
        let (value, table) = match (workspace_table, package_table) {
            (Some(v), _) => (Some(v), "workspace.metadata.spec-exec"),
            (None, Some(v)) => (Some(v), "package.metadata.spec-exec"),
            (None, None) => (None, "workspace.metadata.spec-exec"),
        };
        let config = Config::from_value(
            value,
            &TableSource {
                manifest: &shown,
                text: text.as_deref(),
                table,
            },
        )?;
        Ok(Workspace {
            target_dir: metadata.target_directory.into_std_path_buf(),
            root,
            manifest,
            config,
        })
    }

    pub fn features_dir(&self) -> PathBuf {
        self.root.join(&self.config.features_dir)
    }
}
