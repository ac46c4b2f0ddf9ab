//! One module per `podswarmctl` subcommand. Each owns its flags (an `Args` struct that
//! [`crate::cli::Command`] wraps) and a `run`, so a command's whole behaviour is in one file and
//! `main.rs` only dispatches.
//!
//! Commands that name resources (`get pods`, `describe deploy web`, `delete svc web`,
//! `scale deploy/web`) never compare spellings themselves: [`kind_among`] turns the word into a
//! [`Kind`] through `podswarm_manifest::kinds`, the table the API uses too, and each command
//! says which kinds it works on. So `po` and `pods` cannot mean different things in two
//! commands, and a word a command does not take is refused with the list of those it does.

pub mod apply;
pub mod cluster;
pub mod completion;
pub mod delete;
pub mod describe;
pub mod dns;
pub mod get;
pub mod logs;
pub mod node;
pub mod rebalance;
pub mod render;
pub mod rollout;
pub mod scale;
pub mod token;

use anyhow::{Result, bail};
use podswarm_manifest::kinds::{self, Kind};

/// `-n`/`-A`, shared by every command that works in a namespace.
#[derive(Debug, clap::Args)]
pub struct Scope {
    /// Namespace
    #[arg(
        short = 'n',
        long,
        default_value = "default",
        env = "PODSWARM_NAMESPACE"
    )]
    pub namespace: String,
    /// All namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// The kind `word` names, if it is one of `allowed` (what `command` works on).
pub fn kind_among(word: &str, command: &str, allowed: &[Kind]) -> Result<Kind> {
    match Kind::from_word(word) {
        Some(kind) if allowed.contains(&kind) => Ok(kind),
        Some(kind) => bail!(
            "{command} works on {}, not {}",
            kinds::list(allowed),
            kind.plural()
        ),
        None => bail!(
            "unknown resource type {word:?}: use {}",
            kinds::list(allowed)
        ),
    }
}

/// The help of a resource argument, listing the words the command takes.
fn kinds_help(allowed: &[Kind]) -> String {
    format!("Resource type: {}", kinds::list(allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_kinds_or_clear_errors() {
        let allowed = [Kind::Pod, Kind::Service];
        assert_eq!(kind_among("po", "get", &allowed).ok(), Some(Kind::Pod));
        assert_eq!(kind_among("SVC", "get", &allowed).ok(), Some(Kind::Service));
        assert_eq!(
            kind_among("cm", "get", &allowed).map_err(|e| e.to_string()),
            Err("get works on pods (po) or services (svc), not configmaps".to_owned())
        );
        assert_eq!(
            kind_among("pood", "get", &allowed).map_err(|e| e.to_string()),
            Err("unknown resource type \"pood\": use pods (po) or services (svc)".to_owned())
        );
    }
}
