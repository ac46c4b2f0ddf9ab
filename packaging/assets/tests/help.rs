//! Every flag, argument and subcommand of podswarm's command lines says what it is for: `--help`
//! and the man pages (generated here from these same clap definitions) must never show an empty
//! line where a user expects an explanation.

use clap::{ArgAction, CommandFactory};

/// Walks the command tree and names everything without help text, e.g.
/// `podswarmctl cluster join-token --rotate`. clap's own `--help`/`--version` flags and `help`
/// subcommand are skipped: clap documents those itself.
fn undocumented(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.is_hide_set()
                || matches!(
                    arg.get_action(),
                    ArgAction::Help
                        | ArgAction::HelpShort
                        | ArgAction::HelpLong
                        | ArgAction::Version
                )
            {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                let name = match (arg.get_long(), arg.get_short()) {
                    (Some(long), _) => format!("--{long}"),
                    (None, Some(short)) => format!("-{short}"),
                    (None, None) => format!("<{}>", arg.get_id().as_str().to_ascii_uppercase()),
                };
                out.push(format!("{path} {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                out.push(sub_path.clone());
            }
            walk(sub, &sub_path, out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, cmd.get_name(), &mut out);
    out
}

/// One test for every binary's command line, so a new binary is one more row, and a failure
/// lists what all of them lack at once.
#[test]
fn every_command_line_documents_every_flag_and_subcommand() {
    let missing: Vec<String> = [
        podswarmctl::cli::Cli::command(),
        podswarm_daemon::cli::Args::command(),
        podswarm_gossip::cli::Args::command(),
        podswarm_dns::cli::Args::command(),
        podswarm_ingress::cli::Args::command(),
    ]
    .iter()
    .flat_map(undocumented)
    .collect();
    assert!(
        missing.is_empty(),
        "these have no help text (add a `///` doc comment):\n  {}",
        missing.join("\n  ")
    );
}

/// The walker itself: it must notice what it is there to notice.
#[test]
fn the_walker_names_what_lacks_help() {
    let cmd = clap::Command::new("x")
        .arg(
            clap::Arg::new("quiet")
                .long("quiet")
                .action(ArgAction::SetTrue),
        )
        .arg(clap::Arg::new("file").help("A file"))
        .subcommand(clap::Command::new("sub").arg(clap::Arg::new("name").action(ArgAction::Set)))
        .subcommand(clap::Command::new("ok").about("Fine"));
    assert_eq!(undocumented(&cmd), ["x --quiet", "x sub", "x sub <NAME>"]);
}
