//! A TCP proxy in front of an emulator's endpoint, through which the functions reach a service
//! (SNS, for the outbox relay), so that a test can take that service off the network for a while:
//! a real network fault, not a flag inside a function. While it is down the proxy's port is
//! closed (connections are refused) and the connections it carried are cut; afterwards it
//! listens on the same port again.
//!
//! `POST /_devstack/sns/outage {"seconds": N}` on devstack's Lambda API takes SNS down for N s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    target: String,
    /// `true` while the service is unreachable.
    down: watch::Sender<bool>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target_url`'s host
    /// and port.
    pub async fn start(target_url: &str) -> Result<Arc<Proxy>> {
        let target = host_port(target_url)?;
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the proxy")?;
        let proxy = Arc::new(Proxy { addr: listener.local_addr()?, target, down: watch::Sender::new(false) });
        tokio::spawn(proxy.clone().serve(listener));
        Ok(proxy)
    }

    /// The endpoint URL the functions are given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes the service unreachable for `duration`, starting now.
    pub fn take_down(self: &Arc<Self>, duration: Duration) {
        self.down.send_replace(true);
        let proxy = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            proxy.down.send_replace(false);
        });
    }

    async fn serve(self: Arc<Self>, mut listener: TcpListener) {
        let mut down = self.down.subscribe();
        loop {
            let went_down = tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(self.clone().carry(client));
                    }
                    false
                }
                _ = down.wait_for(|d| *d) => true,
            };
            if went_down {
                // Close the port for the window, then listen on it again.
                drop(listener);
                let _ = down.wait_for(|d| !*d).await;
                listener = loop {
                    match TcpListener::bind(self.addr).await {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
            }
        }
    }

    async fn carry(self: Arc<Self>, mut client: TcpStream) {
        let Ok(mut upstream) = TcpStream::connect(&self.target).await else { return };
        let mut down = self.down.subscribe();
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            _ = down.wait_for(|d| *d) => {} // the connection is cut
        }
    }
}

fn host_port(url: &str) -> Result<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.contains(':') {
        Ok(authority.to_string())
    } else if url.starts_with("https://") {
        Ok(format!("{authority}:443"))
    } else if !authority.is_empty() {
        Ok(format!("{authority}:80"))
    } else {
        Err(anyhow!("no host in {url}"))
    }
}

/// `POST /_devstack/sns/outage {"seconds": N}`.
pub fn router(sns: Arc<Proxy>) -> Router {
    Router::new().route("/_devstack/sns/outage", post(outage)).with_state(sns)
}

async fn outage(State(proxy): State<Arc<Proxy>>, Json(body): Json<Value>) -> StatusCode {
    let seconds = body.get("seconds").and_then(Value::as_f64).unwrap_or(0.0).max(0.0);
    proxy.take_down(Duration::from_secs_f64(seconds));
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn targets_are_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:4566").unwrap(), "127.0.0.1:4566");
        assert_eq!(host_port("http://localhost:4566/path").unwrap(), "localhost:4566");
        assert_eq!(host_port("https://sns.us-east-1.amazonaws.com").unwrap(), "sns.us-east-1.amazonaws.com:443");
    }

    #[tokio::test]
    async fn a_down_proxy_refuses_connections_then_carries_them_again() {
        // An echo server as the "service".
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(&format!("http://{echo_addr}")).await.unwrap();
        let roundtrip = |addr: SocketAddr| async move {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        assert_eq!(&roundtrip(proxy.addr).await.unwrap(), b"ping");
        let mut held = TcpStream::connect(proxy.addr).await.unwrap();
        held.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        held.read_exact(&mut one).await.unwrap();

        proxy.take_down(Duration::from_millis(600));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = TcpStream::connect(proxy.addr).await;
        assert!(refused.is_err(), "connections are refused while down");
        let cut = held.read(&mut one).await;
        assert!(matches!(cut, Ok(0) | Err(_)), "a connection it carried is cut: {cut:?}");

        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(reply) = roundtrip(proxy.addr).await {
                assert_eq!(&reply, b"ping");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the proxy did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
