//! `completions SHELL` and `man`: generated from the one CLI definition in `args`, so
//! they never disagree with `--help`.

use clap::CommandFactory;

use super::args::Cli;
use super::{Error, ok, print};

pub(super) fn completions(shell: clap_complete::Shell) -> Result<u8, Error> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "mcpctl", &mut out);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push_str(match shell {
        clap_complete::Shell::Bash => BASH_NAMES,
        clap_complete::Shell::Zsh => ZSH_NAMES,
        clap_complete::Shell::Fish => FISH_NAMES,
        _ => "",
    });
    print(&text)?;
    ok()
}

/// `mcpctl __names`: the file's servers, one a line; nothing without a file (a
/// completion never prints an error).
pub(super) fn names(file: Option<&std::path::Path>) -> Result<u8, Error> {
    let names: String = file
        .and_then(|f| super::read_raw(f).ok())
        .map(|raw| raw.servers.keys().map(|n| format!("{n}\n")).collect())
        .unwrap_or_default();
    print(&names)?;
    ok()
}

// Server names come from the file, so clap's static scripts cannot know them: each
// script is wrapped to offer `mcpctl __names` where a server is named (after
// `server start|stop|...`, `connect`, `tools`, `upgrade` and `--server`), with the
// `-f FILE` of the line being completed.

const BASH_NAMES: &str = r#"
_mcpctl_names() {
    local i file=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -f|--file) file="${COMP_WORDS[i+1]}" ;;
        esac
    done
    mcpctl ${file:+-f "$file"} __names 2>/dev/null
}
_mcpctl_with_names() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" before=""
    [[ $COMP_CWORD -ge 2 ]] && before="${COMP_WORDS[COMP_CWORD-2]}"
    if [[ "$cur" != -* ]]; then
        case "$before $prev" in
            "server start"|"server stop"|"server restart"|"server status"|"server monitor"|"server logs"|"server backup"|"server restore"|"server scale"|"server autoscale"|*" connect"|*" tools"|*" upgrade"|*" --server")
                COMPREPLY=($(compgen -W "$(_mcpctl_names)" -- "$cur"))
                return 0
                ;;
        esac
    fi
    _mcpctl "$@"
}
complete -F _mcpctl_with_names -o nosort -o bashdefault -o default mcpctl
"#;

const ZSH_NAMES: &str = r#"
_mcpctl_with_names() {
    local prev=${words[CURRENT-1]} before=${words[CURRENT-2]} file i
    for ((i = 2; i < CURRENT; i++)); do
        [[ ${words[i]} == (-f|--file) ]] && file=${words[i+1]}
    done
    if [[ $PREFIX != -* ]] && { [[ $before == server && $prev == (start|stop|restart|status|monitor|logs|backup|restore|scale|autoscale) ]] || [[ $prev == (connect|tools|upgrade|--server) ]]; }; then
        compadd -- ${(f)"$(mcpctl ${file:+-f $file} __names 2>/dev/null)"}
        return
    fi
    _mcpctl "$@"
}
compdef _mcpctl_with_names mcpctl
"#;

const FISH_NAMES: &str = r#"
complete -c mcpctl -n "__fish_seen_subcommand_from server; and __fish_seen_subcommand_from start stop restart status monitor logs backup restore scale autoscale" -f -a "(mcpctl __names 2>/dev/null)"
complete -c mcpctl -n "__fish_seen_subcommand_from connect tools upgrade" -f -a "(mcpctl __names 2>/dev/null)"
"#;

/// The man page: the top-level page, then one section per command (its own page's
/// text), so `man mcpctl` has every command's options and examples.
pub(super) fn man() -> Result<u8, Error> {
    let command = Cli::command();
    let mut out = Vec::new();
    // Every section of the top page but clap's list of `mcpctl-CMD(1)` pages: there
    // are no such pages, each command is a section of this one.
    let top = clap_mangen::Man::new(command.clone());
    top.render_title(&mut out)?;
    let mut sections = Vec::new();
    top.render_name_section(&mut sections)?;
    top.render_synopsis_section(&mut sections)?;
    top.render_description_section(&mut sections)?;
    top.render_options_section(&mut sections)?;
    top.render_extra_section(&mut sections)?;
    top.render_version_section(&mut sections)?;
    out.extend(without_preamble(&sections));
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
        .filter(|l| !l.starts_with(".SH") && !preamble(l))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Sections of the top page without the preamble each repeats.
fn without_preamble(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .filter(|l| !preamble(l))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

fn preamble(line: &str) -> bool {
    line.starts_with(".ie \\n(.g") || line.starts_with(".el .ds Aq")
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
