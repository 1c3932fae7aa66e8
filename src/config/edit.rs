//! Pure edits on a `toml_edit` document: no I/O, tested on strings.
//!
//! Every edit changes only the targeted lines: replaced values keep their
//! surrounding decor (a trailing `# comment` lives in the old value's decor and would
//! otherwise be lost), and new keys go into the table that already holds their
//! siblings.

use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

use super::Error;
use crate::model::raw::{Layer, RawConfig};
use crate::model::resolve::known_list;

pub mod block;

/// Which layer a `config env` command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `[defaults]`: every server.
    Defaults,
    /// `[servers.NAME]`.
    Server(String),
}

impl Scope {
    /// The server this scope names, if it names one.
    pub fn server(&self) -> Option<&str> {
        match self {
            Scope::Defaults => None,
            Scope::Server(name) => Some(name),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Scope::Defaults => "[defaults]".into(),
            Scope::Server(name) => format!("[servers.{name}]"),
        }
    }

    /// The raw layer this scope names, if the file has it.
    pub fn layer<'r>(&self, raw: &'r RawConfig) -> Option<&'r Layer> {
        match self {
            Scope::Defaults => raw.defaults.as_ref(),
            Scope::Server(name) => raw.servers.get(name),
        }
    }
}

pub fn parse(source: &str) -> Result<DocumentMut, toml_edit::TomlError> {
    source.parse::<DocumentMut>()
}

/// The server's table; a clear error listing the known servers when absent.
pub fn server_table<'d>(
    doc: &'d mut DocumentMut,
    name: &str,
) -> Result<&'d mut dyn TableLike, Error> {
    let known: Vec<String> = doc
        .get("servers")
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default();
    doc.get_mut("servers")
        .and_then(|s| s.get_mut(name))
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| unknown_server(name, &known))
}

pub fn unknown_server(name: &str, known: &[String]) -> Error {
    Error::edit(
        format!("unknown server `{name}`"),
        Some(known_list("servers", known.iter())),
    )
}

/// Removes `recipient` from the `[secrets] recipients` list. One that is not in the
/// list is an error naming those that are: a typo must not pass for a revoked key.
pub fn remove_recipient(recipients: &mut Vec<String>, recipient: &str) -> Result<(), Error> {
    let before = recipients.len();
    recipients.retain(|r| r != recipient);
    if recipients.len() < before {
        return Ok(());
    }
    let hint = if recipients.is_empty() {
        "the file has no recipients".to_string()
    } else {
        format!("the recipients are:\n      {}", recipients.join("\n      "))
    };
    Err(Error::edit(
        format!("`{recipient}` is not a recipient; nothing was changed"),
        Some(hint),
    ))
}

fn scope_table<'d>(
    doc: &'d mut DocumentMut,
    scope: &Scope,
) -> Result<&'d mut dyn TableLike, Error> {
    match scope {
        Scope::Defaults => table_entry(doc.as_table_mut(), "defaults"),
        Scope::Server(name) => server_table(doc, name),
    }
}

/// Gets or creates the sub-table `key` of `parent`; a new one goes first, before
/// the other tables, where readers look for `[defaults]`.
fn table_entry<'t>(parent: &'t mut Table, key: &str) -> Result<&'t mut dyn TableLike, Error> {
    parent
        .entry(key)
        .or_insert_with(|| {
            let mut table = Table::new();
            table.set_position(Some(0));
            Item::Table(table)
        })
        .as_table_like_mut()
        .ok_or_else(|| Error::edit(format!("`{key}` is not a table"), None))
}

/// Sets `key = value` in `table`, keeping the old value's decor (and so its comment).
pub fn set_value(table: &mut dyn TableLike, key: &str, value: Value) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        Some(other) => *other = Item::Value(value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

/// Which key/value table of a layer an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapTable {
    Env,
    Secrets,
}

impl MapTable {
    pub fn name(self) -> &'static str {
        match self {
            MapTable::Env => "env",
            MapTable::Secrets => "secrets",
        }
    }
}

/// `config env set` / `config secret set`: `TABLE.KEY = VALUE` in the scope's table.
/// A new table is written inline (`env = { KEY = "v" }`); an existing `[..env]`
/// sub-table is used as it is.
pub fn set_entry(
    doc: &mut DocumentMut,
    scope: &Scope,
    which: MapTable,
    key: &str,
    value: &str,
) -> Result<(), Error> {
    let table = scope_table(doc, scope)?;
    let map = table
        .entry(which.name())
        .or_insert_with(|| Item::Value(Value::InlineTable(InlineTable::new())));
    if let Some(inline) = map.as_inline_table_mut() {
        set_value(inline, key, Value::from(value));
        inline.fmt();
        return Ok(());
    }
    match map.as_table_like_mut() {
        Some(t) => {
            set_value(t, key, Value::from(value));
            Ok(())
        }
        None => Err(Error::edit(
            format!("`{}` in {} is not a table", which.name(), scope.describe()),
            Some(format!(
                "write it as `{} = {{ KEY = \"value\" }}`",
                which.name()
            )),
        )),
    }
}

/// `config env unset` / `config secret unset`: removes `TABLE.KEY`, and the table
/// itself when it becomes empty.
pub fn unset_entry(
    doc: &mut DocumentMut,
    scope: &Scope,
    which: MapTable,
    key: &str,
) -> Result<(), Error> {
    let table = scope_table(doc, scope)?;
    let name = which.name();
    let removed = table
        .get_mut(name)
        .and_then(Item::as_table_like_mut)
        .and_then(|map| map.remove(key));
    let now_empty = table
        .get(name)
        .and_then(Item::as_table_like)
        .is_some_and(|map| map.is_empty());
    if now_empty {
        table.remove(name);
    } else if let Some(inline) = table.get_mut(name).and_then(Item::as_inline_table_mut) {
        inline.fmt();
    }
    match removed {
        Some(_) => Ok(()),
        None => Err(Error::edit(
            format!("`{key}` is not set in {}", scope.describe()),
            Some(format!(
                "`mcpctl config {} list` shows what is set",
                if which == MapTable::Env {
                    "env"
                } else {
                    "secret"
                }
            )),
        )),
    }
}

/// Replaces the value at `path` (a key path to an existing value), keeping its decor.
pub fn replace_value(doc: &mut DocumentMut, path: &[String], value: Value) -> Result<(), Error> {
    let Some((last, parents)) = path.split_last() else {
        return Err(Error::edit("empty key path", None));
    };
    let mut item = doc.as_item_mut();
    for segment in parents {
        item = item
            .as_table_like_mut()
            .and_then(|t| t.get_mut(segment))
            .ok_or_else(|| Error::edit(format!("`{}` is not in the file", path.join(".")), None))?;
    }
    let table = item
        .as_table_like_mut()
        .ok_or_else(|| Error::edit(format!("`{}` is not in the file", path.join(".")), None))?;
    set_value(table, last, value);
    if let Some(inline) = item.as_inline_table_mut() {
        inline.fmt();
    }
    Ok(())
}

/// `profile create` (`must_exist = false`) and `profile update` (`true`): merges the
/// fields of `layer` into `[profiles.NAME]`, key by key, per-server overrides too.
pub fn upsert_profile(
    doc: &mut DocumentMut,
    name: &str,
    layer: &Layer,
    must_exist: bool,
) -> Result<(), Error> {
    let exists = doc.get("profiles").and_then(|p| p.get(name)).is_some();
    match (exists, must_exist) {
        (true, false) => {
            return Err(Error::edit(
                format!("profile `{name}` already exists"),
                Some(format!(
                    "change it with `mcpctl profile update {name} --config FILE.json`"
                )),
            ));
        }
        (false, true) => {
            return Err(Error::edit(
                format!("profile `{name}` does not exist"),
                Some(format!("create it with `mcpctl profile create {name}`")),
            ));
        }
        _ => {}
    }
    let fields = layer_table(layer)?;
    let profiles = doc.entry("profiles").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let Some(profiles) = profiles.as_table_mut() else {
        return Err(Error::edit("`profiles` is not a table", None));
    };
    let profile = profiles
        .entry(name)
        .or_insert_with(|| Item::Table(Table::new()));
    merge(profile, Item::Table(fields));
    let mut next = max_position(doc.as_table()) + 1;
    if let Some(profiles) = doc.get_mut("profiles").and_then(Item::as_table_mut) {
        place_new_tables(profiles, &mut next);
    }
    Ok(())
}

/// The highest document position of any table.
fn max_position(table: &Table) -> isize {
    let own = table.position().unwrap_or(0);
    table
        .iter()
        .filter_map(|(_, item)| item.as_table())
        .map(max_position)
        .fold(own, isize::max)
}

/// Gives tables without a position (new ones) positions after `next`, depth first, so
/// new tables land at the end of the file in order instead of among unrelated ones.
fn place_new_tables(table: &mut Table, next: &mut isize) {
    if table.position().is_none() {
        table.set_position(Some(*next));
        *next += 1;
    }
    for (_, item) in table.iter_mut() {
        if let Some(sub) = item.as_table_mut() {
            place_new_tables(sub, next);
        }
    }
}

/// Forgets the positions a table had in the document it was parsed from.
fn clear_positions(table: &mut Table) {
    table.set_position(None);
    for (_, item) in table.iter_mut() {
        if let Some(sub) = item.as_table_mut() {
            clear_positions(sub);
        }
    }
}

/// The fields of `layer` as a TOML table (maps inline, per-server overrides as tables).
fn layer_table(layer: &Layer) -> Result<Table, Error> {
    let text = toml::to_string(layer)
        .map_err(|e| Error::edit(format!("cannot write the profile: {e}"), None))?;
    let doc =
        parse(&text).map_err(|e| Error::edit(format!("cannot write the profile: {e}"), None))?;
    let mut table = doc.as_table().clone();
    clear_positions(&mut table);
    inline_maps(&mut table);
    Ok(table)
}

/// `env` (a map of strings) reads better inline; `servers` stays as sub-tables.
fn inline_maps(table: &mut Table) {
    for (key, item) in table.iter_mut() {
        if key.get() == "servers" {
            if let Some(servers) = item.as_table_mut() {
                servers.set_implicit(true);
                for (_, server) in servers.iter_mut() {
                    if let Some(t) = server.as_table_mut() {
                        inline_maps(t);
                    }
                }
            }
        } else if let Some(t) = item.as_table() {
            let mut inline = t.clone().into_inline_table();
            inline.fmt();
            *item = Item::Value(Value::InlineTable(inline));
        }
    }
}

/// Merges `source` into `target`: tables key by key, values replaced with decor kept.
fn merge(target: &mut Item, source: Item) {
    match (target.as_table_like_mut(), source) {
        (Some(target_table), Item::Table(source_table)) => {
            for (key, value) in source_table {
                match target_table.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target_table.insert(&key, value);
                    }
                }
            }
        }
        (_, Item::Value(value)) => match target {
            Item::Value(old) => {
                let decor = old.decor().clone();
                *old = value;
                *old.decor_mut() = decor;
            }
            other => *other = Item::Value(value),
        },
        (_, source) => *target = source,
    }
}

/// Writes `field = value` where it takes effect for `server`: into
/// `[profiles.P.servers.NAME]` when its profile `P` sets that field (in the profile or
/// its per-server override, which would otherwise win), else into `[servers.NAME]`.
/// Afterwards the effective value is `value`. A field that excludes another
/// (`instances` and `autoscale`) is found wherever either is set, and the other is
/// removed from the table written.
pub fn set_server_field(
    doc: &mut DocumentMut,
    raw: &RawConfig,
    server: &str,
    profile: &str,
    field: &str,
    value: Value,
) -> Result<(), Error> {
    let profile_layer = raw.profiles.get(profile);
    let rival = rival_of(field);
    let sets = |layer: Option<&Layer>| {
        layer.is_some_and(|l| layer_has(l, field) || rival.is_some_and(|r| layer_has(l, r)))
    };
    let set_value = |table: &mut dyn TableLike, field: &str, value: Value| {
        if let Some(rival) = rival {
            table.remove(rival);
        }
        set_value(table, field, value);
    };
    let in_profile =
        sets(profile_layer) || sets(profile_layer.and_then(|p| p.servers.as_ref()?.get(server)));
    if !in_profile {
        set_value(server_table(doc, server)?, field, value);
        return Ok(());
    }
    server_table(doc, server)?;
    let Some(profile_table) = doc
        .get_mut("profiles")
        .and_then(|p| p.get_mut(profile))
        .and_then(Item::as_table_mut)
    else {
        return Err(Error::edit(
            format!("`[profiles.{profile}]` is not a table"),
            None,
        ));
    };
    let servers = profile_table.entry("servers").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let Some(servers) = servers.as_table_mut() else {
        return Err(Error::edit(
            format!("`profiles.{profile}.servers` is not a table"),
            None,
        ));
    };
    let over = servers
        .entry(server)
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(over) = over.as_table_like_mut() else {
        return Err(Error::edit(
            format!("`profiles.{profile}.servers.{server}` is not a table"),
            None,
        ));
    };
    set_value(over, field, value);
    let mut next = max_position(doc.as_table()) + 1;
    if let Some(profiles) = doc.get_mut("profiles").and_then(Item::as_table_mut) {
        place_new_tables(profiles, &mut next);
    }
    Ok(())
}

/// The field that `field` excludes: one of them decides the instance count.
fn rival_of(field: &str) -> Option<&'static str> {
    match field {
        "instances" => Some("autoscale"),
        "autoscale" => Some("instances"),
        _ => None,
    }
}

/// Whether `layer` sets `field` (by its name in the file).
fn layer_has(layer: &Layer, field: &str) -> bool {
    toml::Value::try_from(layer).is_ok_and(|v| v.get(field).is_some())
}

/// The profile a server uses according to the raw file.
pub fn profile_of(raw: &RawConfig, server: &str) -> String {
    raw.servers
        .get(server)
        .and_then(|s| s.profile.clone())
        .or_else(|| raw.defaults.as_ref().and_then(|d| d.profile.clone()))
        .unwrap_or_else(|| crate::model::DEFAULT_PROFILE.to_string())
}

/// `profile delete`: removes `[profiles.NAME]` (and `[profiles]` when it empties).
pub fn remove_profile(doc: &mut DocumentMut, name: &str) -> Result<(), Error> {
    let Some(profiles) = doc.get_mut("profiles").and_then(Item::as_table_like_mut) else {
        return Err(no_profile(name));
    };
    if profiles.remove(name).is_none() {
        return Err(no_profile(name));
    }
    if profiles.is_empty() {
        doc.remove("profiles");
    }
    Ok(())
}

fn no_profile(name: &str) -> Error {
    Error::edit(
        format!("profile `{name}` is not defined in the file"),
        Some("`mcpctl profile list` shows the profiles".to_string()),
    )
}

#[cfg(test)]
mod tests;
