//! The egress proxy: a sandboxed run's only way to the network. The sandbox listens on
//! its own loopback and hands the listener to sfd (see `sf_worker::sandbox`); the run gets
//! `HTTPS_PROXY` and `HTTP_PROXY` pointing there. sfd reads each connection's first request
//! head: `CONNECT host:port` (HTTPS and any TCP tunnel) or a plain HTTP request in absolute
//! form (`GET http://host:port/…`). A host that the run's rules allow is connected to and
//! relayed both ways; anything else is answered `403` with the reason, naming the setting
//! that would allow it. Each connection becomes one egress record (`sfctl agent egress`),
//! and a denied one an `egress_denied` event.

use std::sync::Arc;
use std::time::Duration;

use sf_core::egress::{Allow, decide, split_host_port};
use sf_proto::{AgentSpec, Capability};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::Config;
use crate::mailbox::{EgressConnection as Connection, Internal};

/// The port the proxy listens on inside each sandbox (each has its own loopback).
pub(crate) const PORT: u16 = 3128;

/// The largest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client has to send its request head, and the proxy to reach the host.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The variables that send a sandboxed run's HTTP clients through the proxy.
pub(crate) fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{PORT}");
    ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"]
        .into_iter()
        .map(|k| (k.to_owned(), url.clone()))
        .collect()
}

/// What `agent`'s runs may reach: its adapter's hosts, then those of each capability it has.
pub(crate) fn rules(config: &Config, agent: &AgentSpec) -> Vec<Allow> {
    let e = &config.egress;
    let mut allow: Vec<Allow> = Vec::new();
    let mut add = |patterns: &[sf_core::egress::HostPattern], rule: String| {
        allow.extend(patterns.iter().map(|p| Allow {
            pattern: p.clone(),
            rule: rule.clone(),
        }));
    };
    if let Some(hosts) = e.adapters.get(&agent.adapter) {
        add(hosts, format!("adapter:{}", agent.adapter));
    }
    for cap in &agent.capabilities {
        let hosts = match cap {
            Capability::Network => &e.network,
            Capability::Github => &e.github,
            Capability::Ticketing => &e.ticketing,
            Capability::Push => continue,
        };
        add(hosts, format!("capability:{cap}"));
    }
    allow
}

/// Serves the proxy of run `run_id` on `listener` until `ended` is cancelled (the run
/// ended); connections open then are relayed to their end (the run's processes are gone, so
/// they close) and recorded like the others. Records go to `tx`.
pub(crate) fn serve(
    listener: std::net::TcpListener,
    run_id: i64,
    allow: Vec<Allow>,
    tx: mpsc::UnboundedSender<Internal>,
    ended: tokio_util::sync::CancellationToken,
) {
    let allow = Arc::new(allow);
    tokio::spawn(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(run_id, error = %e, "cannot serve the run's egress proxy; it has no network");
                return;
            }
        };
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = ended.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (allow, tx) = (Arc::clone(&allow), tx.clone());
                        conns.spawn(async move {
                            if let Some(c) = relay(stream, run_id, &allow).await {
                                let _ = tx.send(Internal::Egress(Box::new(c)));
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(run_id, error = %e, "the egress proxy's accept failed");
                        break;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(listener);
        while conns.join_next().await.is_some() {}
    });
}

/// What the client asked for.
struct Ask {
    host: String,
    port: u16,
    /// `CONNECT`: answer 200 and tunnel; otherwise forward the head as read.
    tunnel: bool,
}

/// Handles one client connection; `None` when it sent no request worth recording.
async fn relay(mut client: TcpStream, run_id: i64, allow: &[Allow]) -> Option<Connection> {
    let started_ms = sf_store::now_ms();
    let (head, ask) = match read_head(&mut client).await {
        Ok(h) => h,
        Err(why) => {
            let _ = respond(&mut client, "400 Bad Request", &why).await;
            return None;
        }
    };
    let mut conn = Connection {
        run_id,
        host: ask.host.clone(),
        port: ask.port,
        rule: decide(allow, &ask.host, ask.port).map(str::to_owned),
        bytes: (0, 0),
        error: None,
        started_ms,
    };
    if conn.rule.is_none() {
        let why = format!(
            "sf denied the connection to {}:{} (EGRESS_DENIED): no egress rule of this agent allows it. \
             A human can allow it: the agent's adapter hosts in [sandbox.egress] of .sf/config.toml, \
             or a capability (network, github, ticketing) given at registration.",
            ask.host, ask.port
        );
        let _ = respond(&mut client, "403 Forbidden", &why).await;
        return Some(conn);
    }
    let target = (ask.host.as_str(), ask.port);
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await;
    let mut upstream = match upstream {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            conn.error = Some(format!("cannot reach {}:{}: {e}", ask.host, ask.port));
            let _ = respond(&mut client, "502 Bad Gateway", conn.error.as_deref()?).await;
            return Some(conn);
        }
        Err(_) => {
            conn.error = Some(format!(
                "{}:{} did not answer within {CONNECT_TIMEOUT:?}",
                ask.host, ask.port
            ));
            let _ = respond(&mut client, "504 Gateway Timeout", conn.error.as_deref()?).await;
            return Some(conn);
        }
    };
    let sent_first = if ask.tunnel {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return Some(conn);
        }
        0
    } else {
        // the request as read (hosts accept the absolute form), and whatever followed it
        if let Err(e) = upstream.write_all(&head).await {
            conn.error = Some(e.to_string());
            return Some(conn);
        }
        head.len() as u64
    };
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((out, back)) => conn.bytes = (out + sent_first, back),
        Err(e) => {
            conn.bytes.0 = sent_first;
            // a peer closing abruptly is how many connections end
            tracing::debug!(run_id, error = %e, "an egress connection ended with an error");
        }
    }
    Some(conn)
}

/// Reads the first request head (and anything after it already received): the bytes, and
/// what they ask for; or why they are not a proxy request.
async fn read_head(client: &mut TcpStream) -> Result<(Vec<u8>, Ask), String> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = client
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading the request: {e}"))?;
            if n == 0 {
                return Err("the connection closed before a whole request head".to_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => return ask(&req),
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(format!("the request head is longer than {MAX_HEAD} bytes"));
                }
                Err(e) => return Err(format!("not an HTTP request: {e}")),
            }
        }
    };
    let ask = tokio::time::timeout(HEAD_TIMEOUT, read)
        .await
        .map_err(|_| format!("no request head within {HEAD_TIMEOUT:?}"))??;
    Ok((buf, ask))
}

/// What a parsed request asks for.
fn ask(req: &httparse::Request<'_, '_>) -> Result<Ask, String> {
    let (method, target) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
    let bad = || {
        format!(
            "`{method} {target}` is not a proxy request: expected `CONNECT host:port` or an absolute URL (`GET http://host/…`)"
        )
    };
    let (authority, tunnel, default_port) = if method.eq_ignore_ascii_case("CONNECT") {
        (target, true, None)
    } else if let Some(rest) = target.strip_prefix("http://") {
        (
            rest.split(['/', '?', '#']).next().unwrap_or(""),
            false,
            Some(80),
        )
    } else {
        return Err(bad());
    };
    // no credentials in the authority
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = split_host_port(authority).ok_or_else(bad)?;
    let port = match (port, default_port) {
        (Some(p), _) => p.parse::<u16>().map_err(|_| bad())?,
        (None, Some(p)) => p,
        (None, None) => return Err(bad()),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Ask {
        host: host.to_ascii_lowercase(),
        port,
        tunnel,
    })
}

/// Answers with `status` and `text` as the body, then closes.
async fn respond(client: &mut TcpStream, status: &str, text: &str) -> std::io::Result<()> {
    let body = format!("{text}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nX-Sf-Egress: denied\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<Ask, String> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(head.as_bytes()).expect("parses");
        ask(&req)
    }

    #[test]
    fn connect_and_absolute_requests_name_their_host_and_port() {
        let a = parse("CONNECT api.openai.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").expect("ok");
        assert_eq!(
            (a.host.as_str(), a.port, a.tunnel),
            ("api.openai.com", 443, true)
        );
        let a = parse("GET http://127.0.0.1:8080/v1/x HTTP/1.1\r\n\r\n").expect("ok");
        assert_eq!(
            (a.host.as_str(), a.port, a.tunnel),
            ("127.0.0.1", 8080, false)
        );
        let a = parse("POST http://u:p@Example.com/v1 HTTP/1.1\r\n\r\n").expect("ok");
        assert_eq!((a.host.as_str(), a.port), ("example.com", 80));
        let a = parse("CONNECT [::1]:9 HTTP/1.1\r\n\r\n").expect("ok");
        assert_eq!((a.host.as_str(), a.port), ("::1", 9));
    }

    #[test]
    fn anything_else_is_refused_with_what_was_expected() {
        for head in [
            "GET /v1/x HTTP/1.1\r\n\r\n",
            "CONNECT api.openai.com HTTP/1.1\r\n\r\n",
            "CONNECT :443 HTTP/1.1\r\n\r\n",
            "GET https://example.com/ HTTP/1.1\r\n\r\n",
        ] {
            let e = parse(head)
                .err()
                .unwrap_or_else(|| panic!("accepted {head:?}"));
            assert!(e.contains("expected `CONNECT host:port`"), "{e}");
        }
    }
}
