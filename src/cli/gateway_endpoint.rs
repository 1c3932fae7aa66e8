//! `mcpctl gateway --upstream NAME=URL ...`: an endpoint over servers reached by URL,
//! from flags. The flags become a file's `[endpoints.NAME]` over remote servers,
//! validated like a file's (names, globs, renames), then served in the foreground.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use age::secrecy::SecretString;
use clap::ValueEnum;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value, value};

use super::Error;
use super::args::GatewayArgs;
use crate::daemon::GivenMember;

pub(super) fn run(args: &GatewayArgs) -> Result<u8, Error> {
    if !args.bind.is_loopback()
        && args.auth_bearer_env.is_none()
        && args.oidc_issuer.is_none()
        && !args.allow_no_auth
    {
        return Err(Error::Failed(format!(
            "--bind {} reaches beyond this machine: give --auth-bearer-env VAR (clients send \
             its value as a bearer), --oidc-issuer URL --oidc-audience AUD (an OpenID \
             provider's tokens), or --allow-no-auth where the network is trusted",
            args.bind
        )));
    }
    let text = config_of(args)?;
    let config = super::gateway::parse_flags(&text)?;
    let mut spec = config
        .endpoints
        .get(endpoint_name(args))
        .cloned()
        .ok_or_else(|| Error::Failed("the flags make no endpoint".into()))?;
    // Validated as if on loopback (a file's endpoint has no `auth`); served where asked.
    spec.bind = args.bind;
    let mut members = BTreeMap::new();
    for (member, server) in &config.servers {
        let url = server
            .url
            .clone()
            .ok_or_else(|| Error::Failed(format!("--upstream {member}: no URL")))?;
        let bearer = upstream_bearer(args, member)?;
        if bearer.is_some() && plain_beyond_loopback(&url) {
            crate::note!(
                "warning: --upstream-bearer-env {member}: its token goes to {url} over plain http, readable on the network between"
            );
        }
        members.insert(member.clone(), GivenMember { url, bearer });
    }
    let bearer = match &args.auth_bearer_env {
        Some(var) => Some(SecretString::from(env_token("--auth-bearer-env", var)?)),
        None => {
            if !args.bind.is_loopback() && args.oidc_issuer.is_none() {
                crate::note!(
                    "warning: --allow-no-auth: anyone who can reach {}:{} can use this endpoint",
                    args.bind,
                    args.port
                );
            }
            None
        }
    };
    let tls = args.tls_cert.clone().zip(args.tls_key.clone());
    crate::daemon::run_standalone_endpoint(spec, members, bearer, tls, config.telemetry)
        .map_err(|e| Error::Failed(e.to_string()))?;
    super::ok()
}

/// The token in `var`, which must be set and not blank.
fn env_token(flag: &str, var: &str) -> Result<String, Error> {
    let token = std::env::var(var)
        .map_err(|_| Error::Failed(format!("{flag} {var}: the variable is not set")))?;
    if token.trim().is_empty() {
        return Err(Error::Failed(format!(
            "{flag} {var}: the variable is empty"
        )));
    }
    Ok(token)
}

/// `member`'s bearer, from its `--upstream-bearer-env NAME=VAR`.
fn upstream_bearer(args: &GatewayArgs, member: &str) -> Result<Option<SecretString>, Error> {
    for pair in &args.upstream_bearers {
        let (name, var) = split_pair("--upstream-bearer-env", pair)?;
        if name == member {
            return Ok(Some(SecretString::from(env_token(
                "--upstream-bearer-env",
                var,
            )?)));
        }
    }
    Ok(None)
}

/// An `http://` URL whose host is not this machine.
fn plain_beyond_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    !(host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

/// `NAME=VALUE`, split at its first `=`.
fn split_pair<'a>(flag: &str, pair: &'a str) -> Result<(&'a str, &'a str), Error> {
    pair.split_once('=')
        .map(|(n, v)| (n.trim(), v))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| Error::Failed(format!("{flag} `{pair}` is not NAME=VALUE")))
}

/// The endpoint's name, in its log lines.
fn endpoint_name(args: &GatewayArgs) -> &str {
    args.name.as_deref().unwrap_or("endpoint")
}

/// The kebab-case name clap gives a flag's value (the file's spelling too).
fn spelled<T: ValueEnum>(v: T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// The flags as a file's text: a remote server per `--upstream` and the endpoint.
fn config_of(args: &GatewayArgs) -> Result<String, Error> {
    let mut servers = Table::new();
    servers.set_implicit(true);
    let mut order = Array::new();
    // Each server needs a port of its own in a file; these are never bound (only the
    // endpoint is served), so any free of the endpoint's will do.
    let mut ports = (1..=u16::MAX).filter(|p| *p != args.port);
    for pair in &args.upstreams {
        let (name, url) = split_pair("--upstream", pair)?;
        if servers.contains_key(name) {
            return Err(Error::Failed(format!("--upstream {name} is given twice")));
        }
        let mut server = Table::new();
        server["mode"] = value("remote");
        server["url"] = value(url);
        let port = ports
            .next()
            .ok_or_else(|| Error::Failed("too many --upstream".into()))?;
        server["port"] = value(i64::from(port));
        servers[name] = Item::Table(server);
        order.push(name);
    }
    for pair in &args.upstream_bearers {
        let (name, _) = split_pair("--upstream-bearer-env", pair)?;
        if !servers.contains_key(name) {
            return Err(Error::Failed(format!(
                "--upstream-bearer-env {name}: no --upstream {name}=URL"
            )));
        }
    }
    let mut endpoint = Table::new();
    endpoint["port"] = value(i64::from(args.port));
    endpoint["bind"] = value(IpAddr::V4(Ipv4Addr::LOCALHOST).to_string());
    endpoint["servers"] = value(order);
    if let Some(prefix) = args.prefix {
        endpoint["prefix"] = value(spelled(prefix));
    }
    if let Some(failure) = args.failure {
        endpoint["failure"] = value(spelled(failure));
    }
    if let Some(oidc) = super::gateway::oidc_table(args)? {
        let mut auth = InlineTable::new();
        auth.insert("oidc", Value::InlineTable(oidc));
        endpoint["auth"] = Item::Value(Value::InlineTable(auth));
    }
    if let Some(tools) = super::gateway::tool_policy(args) {
        endpoint["tools"] = Item::Value(Value::InlineTable(tools));
    }
    for (key, flag, pairs) in [
        ("rename", "--rename", &args.renames),
        ("descriptions", "--describe", &args.descriptions),
    ] {
        if pairs.is_empty() {
            continue;
        }
        let mut map = InlineTable::new();
        for pair in pairs {
            let (name, to) = split_pair(flag, pair)?;
            map.insert(name, Value::from(to));
        }
        endpoint[key] = Item::Value(Value::InlineTable(map));
    }
    if args.discovery || args.discovery_over.is_some() || !args.discovery_always.is_empty() {
        if args.discovery_over.is_none() && args.discovery_always.is_empty() {
            endpoint["discovery"] = value(true);
        } else {
            let mut discovery = InlineTable::new();
            if let Some(n) = args.discovery_over {
                discovery.insert("when_over", Value::from(n));
            }
            if !args.discovery_always.is_empty() {
                let mut always = Array::new();
                args.discovery_always
                    .iter()
                    .for_each(|t| always.push(t.as_str()));
                discovery.insert("always", Value::Array(always));
            }
            endpoint["discovery"] = Item::Value(Value::InlineTable(discovery));
        }
    }
    let mut endpoints = Table::new();
    endpoints.set_implicit(true);
    endpoints[endpoint_name(args)] = Item::Table(endpoint);
    let mut doc = DocumentMut::new();
    doc["version"] = value(1);
    doc["servers"] = Item::Table(servers);
    doc["endpoints"] = Item::Table(endpoints);
    super::gateway::telemetry_table(args, &mut doc);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::plain_beyond_loopback;

    #[test]
    fn a_bearer_over_plain_http_beyond_this_machine_is_warned_about() {
        for warned in [
            "http://mcp-github:8000/mcp",
            "http://10.0.0.5/mcp",
            "http://user@example.com:80/mcp",
            "http://[2001:db8::1]:8000/mcp",
        ] {
            assert!(plain_beyond_loopback(warned), "{warned}");
        }
        for quiet in [
            "https://mcp-github:8000/mcp",
            "http://127.0.0.1:8000/mcp",
            "http://localhost/mcp",
            "http://[::1]:8000/mcp",
        ] {
            assert!(!plain_beyond_loopback(quiet), "{quiet}");
        }
    }
}
