//! Reading the manifests a command names with `-f`: shared by `apply`, `delete` and `render`, so
//! the three accept the same inputs (files, directories without recursion as kubectl without
//! `-R`, `-` for standard input) and refuse oversized or non-UTF-8 input the same way, before
//! anything is sent or rendered.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use podswarm_manifest::{Limits, Manifest, Policy};

/// The largest manifest `apply` and `delete` read: the API's default body limit
/// (`api.max_body_bytes`), so an oversized file is refused here with its name rather than by the
/// API with a bare 413.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The manifests a command reads (`-f`, repeatable), shared by `apply` and `render`.
#[derive(Debug, clap::Args)]
pub struct Inputs {
    /// Manifest file, directory of .yaml/.yml/.json files, or - for standard input (repeatable)
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    pub files: Vec<String>,
}

/// Reads one input, refusing oversized files before reading them whole.
pub fn read_input(path: &str, limit: usize) -> Result<(String, String)> {
    let mut bytes = Vec::new();
    let name = if path == "-" {
        std::io::stdin()
            .lock()
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        "<stdin>".to_owned()
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > limit as u64 {
            bail!("{path} is {size} bytes, over the limit of {limit} bytes");
        }
        file.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {path}"))?;
        path.to_owned()
    };
    if bytes.len() > limit {
        bail!("{name} is over the limit of {limit} bytes");
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{name} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((name, text))
}

/// Reads one input's objects with the API's intake, as far as it can be known here: the node's
/// policy (host paths, host user namespaces) is the API's alone, so any is let through, for the
/// API to judge.
pub fn parse_input(text: &str, source: &str) -> Result<Manifest> {
    Ok(podswarm_manifest::parse(
        text,
        source,
        &Limits {
            max_bytes: MAX_MANIFEST_BYTES,
            ..Limits::default()
        },
        &Policy {
            host_path_allow: vec!["/".into()],
            allow_host_users: true,
        },
    )?)
}

/// Expands `-f` arguments: directories give their manifest files in name order (not recursive,
/// as kubectl without -R).
pub fn inputs(files: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let path = Path::new(f);
        if f != "-" && path.is_dir() {
            let mut entries: Vec<String> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {f}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            entries.sort();
            if entries.is_empty() {
                bail!("{f} holds no .yaml, .yml or .json files");
            }
            out.extend(entries);
        } else {
            out.push(f.clone());
        }
    }
    Ok(out)
}
