//! `gen-assets OUT_DIR`: man pages (podswarmd.8, podswarm-gossip.8, podswarm-dns.8, podswarm-ingress.8, podswarmctl.1 and one per subcommand) and bash,
//! zsh and fish completions, generated from the binaries' own clap definitions so they never drift.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

fn write_man(cmd: &clap::Command, section: &str, dir: &Path, name: &str) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone().name(name.to_owned())).section(section);
    let mut out = Vec::new();
    man.render(&mut out)?;
    let path = dir.join(format!("{name}.{section}"));
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}

fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: gen-assets OUT_DIR")?,
    );
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;

    write_man(
        &podswarm_daemon::cli::Args::command(),
        "8",
        &man,
        "podswarmd",
    )?;
    write_man(
        &podswarm_gossip::cli::Args::command(),
        "8",
        &man,
        "podswarm-gossip",
    )?;
    write_man(
        &podswarm_dns::cli::Args::command(),
        "8",
        &man,
        "podswarm-dns",
    )?;
    write_man(
        &podswarm_ingress::cli::Args::command(),
        "8",
        &man,
        "podswarm-ingress",
    )?;
    let ctl = podswarmctl::cli::Cli::command();
    write_man(&ctl, "1", &man, "podswarmctl")?;
    for sub in ctl.get_subcommands().filter(|s| s.get_name() != "help") {
        write_man(sub, "1", &man, &format!("podswarmctl-{}", sub.get_name()))?;
    }

    for (shell, file) in [
        (clap_complete::Shell::Bash, "podswarmctl"),
        (clap_complete::Shell::Zsh, "_podswarmctl"),
        (clap_complete::Shell::Fish, "podswarmctl.fish"),
    ] {
        let mut cmd = podswarmctl::cli::Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "podswarmctl", &mut buf);
        std::fs::write(completions.join(file), buf)?;
    }
    Ok(())
}
