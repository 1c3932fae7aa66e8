//! `mcpctl gateway [FLAGS] -- COMMAND [ARGS...]`: one server from flags, served by
//! the daemon's machinery in the foreground. The flags become a one-server config,
//! validated like a file's, so every rule of the model holds here too.

use std::collections::BTreeMap;
use std::path::Path;

use age::secrecy::SecretString;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value, value};

use super::args::{GatewayArgs, SharingArg};
use super::{Error, ok};
use crate::secrets::unlock::Unlocked;

/// The one server's name (its log lines say it).
const NAME: &str = "server";
/// The secret that holds the clients' bearer token (never the server's).
const BEARER: &str = "MCPCTL_GATEWAY_BEARER";

pub(super) fn run(args: GatewayArgs, cwd: &Path) -> Result<u8, Error> {
    if args.is_endpoint() {
        return super::gateway_endpoint::run(&args);
    }
    if let Some(flag) = args.endpoint_flags().first() {
        return Err(Error::Failed(format!(
            "{flag} is for an endpoint: give its members with --upstream NAME=URL"
        )));
    }
    // Checked as if on loopback, then bound where asked: the one rule it waives.
    let open = args.allow_no_auth
        && args.auth_bearer_env.is_none()
        && args.oidc_issuer.is_none()
        && !args.bind.is_loopback();
    let (text, secrets) = if open {
        config_of(&GatewayArgs {
            bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ..args.clone()
        })?
    } else {
        config_of(&args)?
    };
    let mut config = parse_flags(&text)?;
    if open {
        for spec in config.servers.values_mut() {
            spec.bind = args.bind;
        }
        crate::note!(
            "warning: --allow-no-auth: anyone who can reach {}:{} can use this server",
            args.bind,
            args.port
        );
    }
    let hidden = args
        .auth_bearer_env
        .iter()
        .chain(&args.session_key_env)
        .cloned()
        .collect();
    let replicas = match (&args.session_key_env, &args.advertise) {
        (Some(var), Some(me)) => {
            let key = std::env::var(var).map_err(|_| {
                Error::Failed(format!("--session-key-env {var}: the variable is not set"))
            })?;
            Some((SecretString::from(key), me.clone()))
        }
        _ => None,
    };
    crate::daemon::run_standalone(
        config.servers,
        config.metrics,
        config.telemetry,
        secrets,
        hidden,
        cwd.to_path_buf(),
        replicas,
    )
    .map_err(|e| Error::Failed(e.to_string()))?;
    ok()
}

/// `auth.oidc` from `--oidc-*` (checked, like a file's, when the config is parsed).
pub(super) fn oidc_table(args: &GatewayArgs) -> Result<Option<InlineTable>, Error> {
    let (Some(issuer), Some(audience)) = (&args.oidc_issuer, &args.oidc_audience) else {
        return Ok(None);
    };
    let mut oidc = InlineTable::new();
    oidc.insert("issuer", Value::from(issuer.as_str()));
    oidc.insert("audience", Value::from(audience.as_str()));
    if !args.oidc_scopes.is_empty() {
        let mut scopes = InlineTable::new();
        for pair in &args.oidc_scopes {
            let (scope, globs) = pair.split_once('=').ok_or_else(|| {
                Error::Failed(format!(
                    "--oidc-scope {pair}: not SCOPE=GLOB[,GLOB...] (e.g. mcp:read=read_*,search)"
                ))
            })?;
            let globs: Array = globs.split(',').map(str::trim).collect();
            scopes.insert(scope, Value::Array(globs));
        }
        oidc.insert("scopes", Value::InlineTable(scopes));
    }
    if let Some(rate) = &args.oidc_rate {
        oidc.insert("rate", Value::from(rate.as_str()));
    }
    Ok(Some(oidc))
}

/// The flags' config, validated like a file (its errors point into the flags' text).
pub(super) fn parse_flags(text: &str) -> Result<crate::model::Config, Error> {
    crate::model::parse(text).map_err(|diagnostics| {
        Error::Config(crate::config::Error::Invalid {
            file: "(the flags)".into(),
            source_text: text.to_string(),
            diagnostics,
            all: true,
        })
    })
}

/// The flags as a config file's text, and the secrets it refers to.
fn config_of(args: &GatewayArgs) -> Result<(String, Unlocked), Error> {
    let mut server = Table::new();
    match (&args.url, args.command.split_first()) {
        (Some(url), _) => {
            server["mode"] = value("remote");
            server["url"] = value(url.as_str());
        }
        (None, Some((program, rest))) => {
            server["command"] = value(program.as_str());
            let mut list = Array::new();
            rest.iter().for_each(|a| list.push(a.as_str()));
            server["args"] = value(list);
        }
        (None, None) => {
            return Err(Error::Failed(
                "give the server to run after `--` (or --url)".into(),
            ));
        }
    }
    server["port"] = value(i64::from(args.port));
    server["bind"] = value(args.bind.to_string());
    server["sharing"] = value(match args.sharing {
        SharingArg::Multiplex => "multiplex",
        SharingArg::PerSession => "per-session",
    });
    server["instances"] = value(i64::from(args.instances));
    if let Some(tools) = tool_policy(args) {
        server["tools"] = Item::Value(Value::InlineTable(tools));
    }
    if !args.headers.is_empty() {
        let mut headers = InlineTable::new();
        let mut env = InlineTable::new();
        for header in &args.headers {
            let (name, template) = header
                .split_once('=')
                .ok_or_else(|| Error::Failed(format!("--header `{header}` is not NAME=VALUE")))?;
            headers.insert(name.trim(), Value::from(template));
            // `${VAR}` in a template is read from this process's environment.
            for var in crate::model::resolve::template_names(template) {
                if let Ok(v) = std::env::var(var) {
                    env.insert(var, Value::from(v));
                }
            }
        }
        server["headers"] = Item::Value(Value::InlineTable(headers));
        if !env.is_empty() {
            server["env"] = Item::Value(Value::InlineTable(env));
        }
    }
    let mut unlocked = Unlocked::default();
    if let Some(var) = &args.auth_bearer_env {
        let token = std::env::var(var).map_err(|_| {
            Error::Failed(format!("--auth-bearer-env {var}: the variable is not set"))
        })?;
        if token.trim().is_empty() {
            return Err(Error::Failed(format!(
                "--auth-bearer-env {var}: the variable is empty; clients would never get in"
            )));
        }

        let mut secrets = InlineTable::new();
        // A placeholder for the file's ciphertext: the value itself comes from `var`.
        secrets.insert(BEARER, Value::from("age:from-the-environment"));
        server["secrets"] = Item::Value(Value::InlineTable(secrets));
        let mut auth = InlineTable::new();
        auth.insert("bearer", Value::from(BEARER));
        server["auth"] = Item::Value(Value::InlineTable(auth));
        unlocked.values.insert(
            NAME.to_string(),
            BTreeMap::from([(BEARER.to_string(), SecretString::from(token))]),
        );
    }
    if let Some(oidc) = oidc_table(args)? {
        let auth = server["auth"].or_insert(Item::Value(Value::InlineTable(InlineTable::new())));
        if let Some(auth) = auth.as_inline_table_mut() {
            auth.insert("oidc", Value::InlineTable(oidc));
        }
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let mut tls = InlineTable::new();
        tls.insert("cert", Value::from(cert.to_string_lossy().as_ref()));
        tls.insert("key", Value::from(key.to_string_lossy().as_ref()));
        server["tls"] = Item::Value(Value::InlineTable(tls));
    }
    let mut doc = DocumentMut::new();
    doc["version"] = value(1);
    if let Some(addr) = &args.metrics {
        let mut daemon = Table::new();
        daemon["metrics"] = value(addr.as_str());
        doc["daemon"] = Item::Table(daemon);
    }
    telemetry_table(args, &mut doc);
    let mut servers = Table::new();
    servers.set_implicit(true);
    servers[NAME] = Item::Table(server);
    doc["servers"] = Item::Table(servers);
    Ok((doc.to_string(), unlocked))
}

/// `[telemetry]` from `--otlp` and `--otlp-sample-ratio`, checked as a file's.
pub(super) fn telemetry_table(args: &GatewayArgs, doc: &mut DocumentMut) {
    if let Some(url) = &args.otlp {
        let mut telemetry = Table::new();
        telemetry["otlp_endpoint"] = value(url.as_str());
        if let Some(ratio) = args.otlp_sample_ratio {
            telemetry["sample_ratio"] = value(ratio);
        }
        doc["telemetry"] = Item::Table(telemetry);
    }
}

/// `tools = { allow, deny, read_only }` from the flags, when any is given.
pub(super) fn tool_policy(args: &GatewayArgs) -> Option<InlineTable> {
    if args.tools_allow.is_empty() && args.tools_deny.is_empty() && !args.read_only {
        return None;
    }
    let mut tools = InlineTable::new();
    for (key, globs) in [("allow", &args.tools_allow), ("deny", &args.tools_deny)] {
        if !globs.is_empty() {
            let mut list = Array::new();
            globs.iter().for_each(|g| list.push(g.as_str()));
            tools.insert(key, Value::Array(list));
        }
    }
    if args.read_only {
        tools.insert("read_only", Value::from(true));
    }
    Some(tools)
}
