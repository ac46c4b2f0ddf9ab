//! `rollout history`: the revisions a Deployment has kept, or one revision's pod template, in
//! kubectl's words and layout (`DeploymentHistoryViewer` printed through its name printer, which
//! is where the space after the name and the blank last line come from).

use anyhow::{Result, bail};
use podswarm_api::DeploymentRevision;

use super::{Target, detail, revisions, template};
use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Show this revision's pod template instead of the list; 0 lists them all
    #[arg(long, default_value_t = 0)]
    pub revision: u64,
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let name = args.target.name()?;
    // A Deployment that is not there is an error, not an empty history.
    detail(client, &args.target).await?;
    let revisions = revisions(client, &args.target).await?;
    print!("{}", history(name, &revisions, args.revision)?);
    Ok(())
}

/// What `rollout history` prints for these revisions (oldest first): the list, or with
/// `revision` > 0 that revision's template.
pub fn history(name: &str, revisions: &[DeploymentRevision], revision: u64) -> Result<String> {
    let body = if revisions.is_empty() {
        "No rollout history found.".to_owned()
    } else if revision > 0 {
        let Some(r) = revisions.iter().find(|r| r.revision == revision) else {
            bail!("unable to find the specified revision");
        };
        template::describe(&r.template)
    } else {
        let rows: Vec<(String, &str)> = revisions
            .iter()
            .map(|r| {
                (
                    r.revision.to_string(),
                    r.change_cause
                        .as_deref()
                        .filter(|c| !c.is_empty())
                        .unwrap_or("<none>"),
                )
            })
            .collect();
        // Go's tabwriter as kubectl sets it up: cells padded by two spaces.
        let width = rows
            .iter()
            .map(|(r, _)| r.len())
            .chain(["REVISION".len()])
            .max()
            .unwrap_or(0)
            + 2;
        let mut out = format!("{:<width$}CHANGE-CAUSE\n", "REVISION");
        for (revision, cause) in rows {
            out.push_str(&format!("{revision:<width$}{cause}\n"));
        }
        out
    };
    let with = if revision > 0 {
        format!("with revision #{revision}")
    } else {
        String::new()
    };
    Ok(format!("deployment.apps/{name} {with}\n{body}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(n: u64, cause: Option<&str>) -> DeploymentRevision {
        DeploymentRevision {
            revision: n,
            template_hash: format!("h{n}"),
            created: 0,
            template: Default::default(),
            change_cause: cause.map(str::to_owned),
        }
    }

    #[test]
    fn the_list_reads_like_kubectls() {
        let revs = [revision(1, None), revision(12, Some("kubectl apply v2"))];
        assert_eq!(
            history("web", &revs, 0).unwrap(),
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n12        kubectl apply v2\n\n"
        );
        assert_eq!(
            history("web", &[], 0).unwrap(),
            "deployment.apps/web \nNo rollout history found.\n"
        );
        assert_eq!(
            history("web", &revs, 3).unwrap_err().to_string(),
            "unable to find the specified revision"
        );
        assert!(
            history("web", &revs, 12)
                .unwrap()
                .starts_with("deployment.apps/web with revision #12\nPod Template:\n")
        );
    }
}
