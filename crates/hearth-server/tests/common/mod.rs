//! What every in-process gateway test needs: a state from config text, the gateway on a free
//! port (optionally pretending every client comes from one address), an HTTP client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::MockConnectInfo;
use hearth_config::load_str;
use hearth_server::{AppState, Auth};

/// A gateway serving in this process.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The server task (`serve` aborts with the test's runtime).
    pub _task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// `http://ADDR`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The gateway state for `config_text`, with `env` as its whole environment.
pub fn state(config_text: &str, env: &[(&str, &str)]) -> AppState {
    let env: BTreeMap<String, String> =
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let loaded = load_str("test.json5", config_text, &env);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    let auth = Auth::from_config(&config, &env).unwrap();
    AppState::new(config, Arc::new(env), auth).unwrap()
}

/// The gateway on a free port; `client_ip` pretends every connection comes from there.
pub async fn start(state: AppState, client_ip: Option<[u8; 4]>) -> Gateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = match client_ip {
        None => tokio::spawn(async move {
            hearth_server::serve(listener, state, std::future::pending()).await.unwrap();
        }),
        Some(ip) => {
            let app =
                hearth_server::app(state).layer(MockConnectInfo(SocketAddr::from((ip, 40000))));
            tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            })
        }
    };
    Gateway { addr, _task: task }
}

/// An HTTP client (rustls with ring, as the gateway's own).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
