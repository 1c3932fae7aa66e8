//! Whole sections of the file as text: a server's block taken out for a backup, and
//! put back (under its name or a new one) by a restore. Pure, like every edit: the
//! text keeps its comments, because `toml_edit` keeps them in the decor of the
//! tables and keys that move with it.

use toml_edit::{DocumentMut, Item, Table};

use super::{Error, clear_positions, max_position, parse, place_new_tables};

/// A document holding only `item` at `path` (`servers.NAME`, say), as text.
fn alone(path: [&str; 2], mut item: Item) -> String {
    own_comment_only(&mut item);
    let mut doc = DocumentMut::new();
    let mut parent = Table::new();
    parent.set_implicit(true);
    parent.insert(path[1], item);
    doc.insert(path[0], Item::Table(parent));
    doc.to_string()
}

/// Keeps, of the text before a table's header, only the comment paragraph right above
/// it: `toml_edit` gives a header every comment since the previous table, and those
/// before a blank line belong to what came before (a commented-out example, say).
fn own_comment_only(item: &mut Item) {
    let Some(table) = item.as_table_mut() else {
        return;
    };
    let prefix = table
        .decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    let own = match prefix.trim_end_matches(['\n', ' ', '\t']).rfind("\n\n") {
        Some(at) => format!("\n{}", &prefix[at + 2..]),
        None => prefix.clone(),
    };
    if own != prefix {
        table.decor_mut().set_prefix(own);
    }
}

/// `[servers.NAME]` and its sub-tables, comments above and inside included.
pub fn server_block(doc: &DocumentMut, name: &str) -> Result<String, Error> {
    let item = doc
        .get("servers")
        .and_then(|s| s.get(name))
        .ok_or_else(|| {
            let known: Vec<String> = doc
                .get("servers")
                .and_then(Item::as_table_like)
                .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
                .unwrap_or_default();
            super::unknown_server(name, &known)
        })?;
    Ok(alone(["servers", name], item.clone()))
}

/// `[profiles.PROFILE]` with only `server`'s override (`[profiles.P.servers.NAME]`).
pub fn profile_section(doc: &DocumentMut, profile: &str, server: &str) -> Option<String> {
    let mut item = doc.get("profiles")?.get(profile)?.clone();
    if let Some(servers) = item.get_mut("servers").and_then(Item::as_table_like_mut) {
        let others: Vec<String> = servers
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| k != server)
            .collect();
        for other in others {
            servers.remove(&other);
        }
        if servers.is_empty()
            && let Some(table) = item.as_table_like_mut()
        {
            table.remove("servers");
        }
    }
    Some(alone(["profiles", profile], item))
}

/// `[defaults]`, when the file has it.
pub fn defaults_section(doc: &DocumentMut) -> Option<String> {
    let mut item = doc.get("defaults")?.clone();
    own_comment_only(&mut item);
    let mut out = DocumentMut::new();
    out.insert("defaults", item);
    Some(out.to_string())
}

/// The item at `outer.inner` of a section's text, positions forgotten.
fn take(text: &str, outer: &str, inner: &str) -> Result<Item, Error> {
    let mut doc = parse(text).map_err(|e| Error::edit(format!("the backup's text: {e}"), None))?;
    let mut item = doc
        .get_mut(outer)
        .and_then(Item::as_table_like_mut)
        .and_then(|t| t.remove(inner))
        .ok_or_else(|| Error::edit(format!("the backup has no `[{outer}.{inner}]`"), None))?;
    if let Some(table) = item.as_table_mut() {
        clear_positions(table);
    }
    Ok(item)
}

/// The implicit `[outer]` table of `doc`, made when absent.
fn parent<'d>(doc: &'d mut DocumentMut, outer: &str) -> Result<&'d mut Table, Error> {
    doc.entry(outer)
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| Error::edit(format!("`{outer}` is not a table"), None))
}

/// Puts `item` at `table[key]` and gives it (and its sub-tables) places at the end of
/// the file, in their order.
fn put_last(doc: &mut DocumentMut, outer: &str, path: &[&str], item: Item) -> Result<(), Error> {
    let mut next = max_position(doc.as_table()) + 1;
    let mut table = parent(doc, outer)?;
    let (last, middle) = path
        .split_last()
        .ok_or_else(|| Error::edit("empty path", None))?;
    for key in middle {
        table = table
            .entry(key)
            .or_insert_with(|| {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            })
            .as_table_mut()
            .ok_or_else(|| Error::edit(format!("`{key}` is not a table"), None))?;
    }
    if table.contains_key(last) {
        return Err(Error::edit(
            format!("`{outer}.{}` is already in the file", path.join(".")),
            None,
        ));
    }
    table.insert(last, item);
    if let Some(Item::Table(new)) = table.get_mut(last) {
        place_new_tables(new, &mut next);
    }
    Ok(())
}

/// Restores a server's block (from [`server_block`]'s text of server `from`) as
/// server `to`, at the end of the file.
pub fn insert_server(
    doc: &mut DocumentMut,
    block: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    let item = take(block, "servers", from)?;
    put_last(doc, "servers", &[to], item)
}

/// Many servers' blocks (each `[servers.NAME]` text with its name) at the end of the
/// file, in their order. The end is found once: finding it for each block made an
/// import of N servers quadratic.
pub fn insert_servers(doc: &mut DocumentMut, blocks: &[(String, &str)]) -> Result<(), Error> {
    let mut next = max_position(doc.as_table()) + 1;
    let table = parent(doc, "servers")?;
    for (text, name) in blocks {
        let item = take(text, "servers", name)?;
        if table.contains_key(name) {
            return Err(Error::edit(
                format!("`servers.{name}` is already in the file"),
                None,
            ));
        }
        table.insert(name, item);
        if let Some(Item::Table(new)) = table.get_mut(name) {
            place_new_tables(new, &mut next);
        }
    }
    Ok(())
}

/// Restores a profile (from [`profile_section`]'s text), its override of `from`
/// renamed to `to`.
pub fn insert_profile(
    doc: &mut DocumentMut,
    section: &str,
    profile: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    let mut item = take(section, "profiles", profile)?;
    if from != to
        && let Some(servers) = item.get_mut("servers").and_then(Item::as_table_like_mut)
        && let Some(over) = servers.remove(from)
    {
        servers.insert(to, over);
    }
    put_last(doc, "profiles", &[profile], item)
}

/// Restores only `from`'s override inside an existing profile, as `to`'s. Returns
/// whether the section had one.
pub fn insert_override(
    doc: &mut DocumentMut,
    section: &str,
    profile: &str,
    from: &str,
    to: &str,
) -> Result<bool, Error> {
    let mut item = take(section, "profiles", profile)?;
    let Some(over) = item
        .get_mut("servers")
        .and_then(Item::as_table_like_mut)
        .and_then(|s| s.remove(from))
    else {
        return Ok(false);
    };
    put_last(doc, "profiles", &[profile, "servers", to], over)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"version = 1

[defaults]
restart = "always" # keep them up

[profiles.prod]
instances = 2

[profiles.prod.servers.echo]
port = 9000 # prod port

[profiles.prod.servers.other]
port = 9001

# The echo fixture,
# two lines of comment.
[servers.echo]
command = "mcp-echo"   # our fixture
port = 8000
profile = "prod"
secrets = { TOKEN = "age:abc" }

# its env
[servers.echo.env]
A = "1" # first

[servers.other]
command = "x"
port = 8001
"#;

    #[test]
    fn a_block_comes_out_with_its_comments_and_goes_back_in_byte_for_byte() {
        let doc = parse(FILE).unwrap();
        let block = server_block(&doc, "echo").unwrap();
        assert_eq!(
            block,
            "\n# The echo fixture,\n# two lines of comment.\n[servers.echo]\ncommand = \"mcp-echo\"   # our fixture\nport = 8000\nprofile = \"prod\"\nsecrets = { TOKEN = \"age:abc\" }\n\n# its env\n[servers.echo.env]\nA = \"1\" # first\n"
        );
        // Remove it, then restore it: the file is what it was, the block at the end.
        let without = FILE.replace(&block[1..], "");
        let mut doc = parse(&without).unwrap();
        insert_server(&mut doc, &block, "echo", "echo").unwrap();
        let after = doc.to_string();
        assert!(after.ends_with(&block[1..]), "{after}");
        assert!(after.starts_with(without.trim_end()), "{after}");
        let raw = crate::model::parse_raw(&after).unwrap();
        assert_eq!(raw.servers["echo"].env.as_ref().unwrap()["A"], "1");
    }

    #[test]
    fn only_the_comment_paragraph_right_above_a_block_is_its_own() {
        let src = "version = 1\n\n[servers.a]\ncommand = \"x\"\nport = 1\n\n# an example, commented out:\n# [servers.example]\n\n# b's own comment\n[servers.b]\ncommand = \"y\"\nport = 2\n";
        let block = server_block(&parse(src).unwrap(), "b").unwrap();
        assert_eq!(
            block,
            "\n# b's own comment\n[servers.b]\ncommand = \"y\"\nport = 2\n"
        );
    }

    #[test]
    fn a_restore_under_a_new_name_renames_the_block_and_its_override() {
        let doc = parse(FILE).unwrap();
        let block = server_block(&doc, "echo").unwrap();
        let section = profile_section(&doc, "prod", "echo").unwrap();
        assert_eq!(
            section,
            "\n[profiles.prod]\ninstances = 2\n\n[profiles.prod.servers.echo]\nport = 9000 # prod port\n"
        );
        let mut doc = parse(FILE).unwrap();
        insert_server(&mut doc, &block, "echo", "echo2").unwrap();
        assert!(insert_override(&mut doc, &section, "prod", "echo", "echo2").unwrap());
        let after = doc.to_string();
        assert!(after.contains("[servers.echo2]\ncommand"), "{after}");
        assert!(
            after.contains("[servers.echo2.env]\nA = \"1\" # first\n"),
            "{after}"
        );
        assert!(
            after.contains("[profiles.prod.servers.echo2]\nport = 9000 # prod port\n"),
            "{after}"
        );
        let err = insert_server(&mut doc, &block, "echo", "echo2").unwrap_err();
        assert!(err.to_string().contains("already in the file"), "{err}");

        let mut bare = parse("version = 1\n").unwrap();
        insert_profile(&mut bare, &section, "prod", "echo", "e3").unwrap();
        assert_eq!(
            bare.to_string(),
            "version = 1\n\n[profiles.prod]\ninstances = 2\n\n[profiles.prod.servers.e3]\nport = 9000 # prod port\n"
        );
        assert_eq!(
            defaults_section(&parse(FILE).unwrap()).unwrap(),
            "\n[defaults]\nrestart = \"always\" # keep them up\n"
        );
    }
}
