//! `mcpctl gateway --upstream NAME=URL ...`: an endpoint over servers that run
//! elsewhere (the Services of a cluster's MCP servers, say), in the foreground: the
//! endpoint's aggregation, policy and checks as the daemon serves them, its members
//! given by URL instead of run here. SIGTERM or SIGINT end it (exit 0).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use age::secrecy::SecretString;

use crate::gateway;
use crate::gateway::endpoint::table::MemberState;
use crate::gateway::endpoint::{Address, Directory, Endpoint, MemberInfo};
use crate::model::endpoint::EndpointSpec;

use super::{Error, io_err};

/// A member as given on the command line: its URL, and its bearer when it has `auth`.
pub struct GivenMember {
    pub url: String,
    pub bearer: Option<SecretString>,
}

/// Members by name, as given: each is taken to be up until it fails to answer (the
/// endpoint's catalog then marks it down, and reads it again each second).
struct Given(BTreeMap<String, Address>);

impl Directory for Given {
    fn member(&self, name: &str) -> MemberInfo {
        let address = self.0.get(name).cloned();
        MemberInfo {
            state: match address {
                Some(_) => MemberState::Up,
                None => MemberState::Down("no --upstream for it".into()),
            },
            address,
            idle: false,
            can_idle: false,
            generation: 0,
            // A member's own policy holds on its own port, where it runs.
            policy: crate::policy::Rules::default(),
        }
    }
}

/// Serves `spec` over `members` until SIGTERM or SIGINT; clients must send `bearer`
/// when there is one, over HTTPS with `tls` (certificate and key files).
pub fn run_standalone_endpoint(
    spec: EndpointSpec,
    members: BTreeMap<String, GivenMember>,
    bearer: Option<SecretString>,
    tls: Option<(PathBuf, PathBuf)>,
    telemetry: Option<crate::model::telemetry::TelemetrySpec>,
) -> Result<(), Error> {
    let members = members
        .into_iter()
        .map(|(name, given)| match given.url.parse() {
            Ok(url) => Ok((
                name,
                Address {
                    url,
                    bearer: given.bearer,
                },
            )),
            Err(_) => Err(Error::NotStarted(format!(
                "member {name}: `{}` is not a URL",
                given.url
            ))),
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let runtime = super::standalone::runtime()?;
    runtime.block_on(async move {
        // `--otlp`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else off.
        let settings = telemetry
            .map(|t| gateway::trace::Settings::new(&t.otlp_endpoint, t.sample_ratio))
            .or_else(gateway::trace::Settings::from_env);
        gateway::trace::configure(settings)
            .await
            .map_err(|e| Error::NotStarted(e.to_string()))?;
        let served = serve(spec, members, bearer, tls).await;
        gateway::trace::shutdown().await;
        served
    })
}

async fn serve(
    spec: EndpointSpec,
    members: BTreeMap<String, Address>,
    bearer: Option<SecretString>,
    tls: Option<(PathBuf, PathBuf)>,
) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(io_err("cannot handle SIGTERM"))?;
    let tls = match tls {
        Some((cert, key)) => {
            Some(gateway::tls::load(&cert, &key).map_err(|e| Error::NotStarted(e.to_string()))?)
        }
        None => None,
    };
    let name = spec.name.clone();
    let spec_oidc = spec.auth_oidc.clone();
    let addr = std::net::SocketAddr::new(spec.bind, spec.port);
    let endpoint = Endpoint::new(spec, Arc::new(Given(members)))
        .map_err(io_err("cannot make the endpoint's HTTP client"))?;
    // The first lists, before the port is served (a first client finds them); a
    // signal meanwhile ends it at once.
    tokio::select! {
        () = endpoint.prime() => {}
        _ = term.recv() => return Ok(()),
        _ = tokio::signal::ctrl_c() => return Ok(()),
    }
    let oidc = match &spec_oidc {
        Some(o) => {
            let buckets = Arc::new(gateway::rate::Buckets::new(gateway::rate::MAX_BUCKETS));
            Some(
                gateway::oidc::Oidc::new(o, buckets)
                    .map_err(io_err("cannot make the OIDC issuer's HTTP client"))?,
            )
        }
        None => None,
    };
    let auth = gateway::Auth {
        target: name.clone(),
        bearer: bearer.map(Arc::new),
        oidc,
        ..gateway::Auth::default()
    };
    let served = gateway::endpoint::serve(&endpoint, addr, auth, tls)
        .await
        .map_err(|e| Error::NotStarted(format!("endpoint {name}: {e}")))?;
    let gateway = served.gateway;
    tracing::info!(
        "endpoint {name}: serving {} tools on {}",
        endpoint.table().tools.listed.len(),
        gateway.addr
    );
    // Members going down and coming back are said in the log by the catalog.
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    gateway.shut().await;
    drop(served.catalog);
    Ok(())
}
