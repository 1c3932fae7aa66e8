//! `completions SHELL` and `man`: generated from the one CLI definition in `args`, so
//! they never disagree with `--help`.

use clap::CommandFactory;

use super::args::Cli;
use super::{Error, ok, print};

pub(super) fn completions(shell: clap_complete::Shell) -> Result<u8, Error> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "mcpctl", &mut out);
    print(&String::from_utf8_lossy(&out))?;
    ok()
}

/// The man page: the top-level page, then one section per command (its own page's
/// text), so `man mcpctl` has every command's options and examples.
pub(super) fn man() -> Result<u8, Error> {
    let command = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        for (name, page) in pages(sub, "mcpctl") {
            out.extend_from_slice(format!(".SH \"{}\"\n", name.replace('-', " ")).as_bytes());
            let man = clap_mangen::Man::new(page);
            let mut section = Vec::new();
            man.render_description_section(&mut section)?;
            man.render_options_section(&mut section)?;
            man.render_extra_section(&mut section)?;
            out.extend(strip_heading(&section));
        }
    }
    print(&String::from_utf8_lossy(&out))?;
    ok()
}

/// `cmd` and every command below it, with its full name (`mcpctl-server-backup`).
fn pages(cmd: &clap::Command, prefix: &str) -> Vec<(String, clap::Command)> {
    let name = format!("{prefix}-{}", cmd.get_name());
    let mut all = vec![(name.clone(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        all.extend(pages(sub, &name));
    }
    all
}

/// A section rendered on its own starts with its `.SH` line (the caller names it)
/// and the page's preamble, which the page already has.
fn strip_heading(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .filter(|l| {
            !l.starts_with(".SH") && !l.starts_with(".ie \\n(.g") && !l.starts_with(".el .ds Aq")
        })
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's `--help` ends with an example, one per line.
    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let name = format!("{path} {}", cmd.get_name());
            let subs: Vec<&clap::Command> =
                cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
            let help = cmd
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            // In `after_help`, not the doc comment: clap rewraps those, running the
            // examples together into one paragraph.
            if !help.contains("Example") {
                missing.push(name.clone());
            }
            for sub in subs {
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        let top = Cli::command();
        for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, "mcpctl", &mut missing);
        }
        assert!(missing.is_empty(), "no example in --help of: {missing:#?}");
    }
}
