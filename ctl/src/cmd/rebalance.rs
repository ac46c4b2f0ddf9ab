//! `podswarmctl rebalance [--dry-run]`: evens out how each Deployment's pods are spread over the
//! nodes they may use, which podswarm never does by itself (running pods stay where they are, so
//! a node that joins or comes back from maintenance gets only new pods).
//!
//! The daemon plans the moves and writes them to the replicated state; every node then places
//! each moved pod on its new node, and the old node hands it over as in a drain: its copy keeps
//! serving until the new one is ready and has taken over. This command prints the moves and
//! returns; `--dry-run` only prints them.

use anyhow::Result;
use hyper::Method;
use podswarm_api::Rebalance;

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only print the moves, without making them
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let path = if args.dry_run {
        "/api/v1/rebalance?dryRun=true"
    } else {
        "/api/v1/rebalance"
    };
    let answer: Rebalance = client.call(Method::POST, path, None, &[]).await?;
    print!("{}", report(&answer, args.dry_run));
    Ok(())
}

/// What the command prints for the API's answer, kubectl-like: one line per pod.
fn report(answer: &Rebalance, dry_run: bool) -> String {
    if answer.moves.is_empty() {
        return "nothing to move: the pods are evenly spread\n".to_owned();
    }
    let suffix = if dry_run { " (dry run)" } else { "" };
    let mut out = String::new();
    for m in &answer.moves {
        let (namespace, name) = m.pod.split_once('/').unwrap_or(("default", &m.pod));
        out.push_str(&format!(
            "pod/{name} (namespace {namespace}): {} -> {}{suffix}\n",
            m.from, m.to
        ));
    }
    if !dry_run {
        out.push_str(&format!(
            "{} pod(s) moving; each keeps serving until its new copy is ready\n",
            answer.moves.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_api::PodMove;

    #[test]
    fn moves_print_one_line_each_and_a_summary() {
        let answer = Rebalance {
            moves: vec![PodMove {
                pod: "shop/web-5d8f-1".into(),
                from: "node1".into(),
                to: "node2".into(),
            }],
            dry_run: false,
        };
        assert_eq!(
            report(&answer, false),
            "pod/web-5d8f-1 (namespace shop): node1 -> node2\n1 pod(s) moving; each keeps serving until its new copy is ready\n"
        );
        assert_eq!(
            report(&answer, true),
            "pod/web-5d8f-1 (namespace shop): node1 -> node2 (dry run)\n"
        );
        assert_eq!(
            report(&Rebalance::default(), false),
            "nothing to move: the pods are evenly spread\n"
        );
    }
}
