//! The agent card: A2A 1.0 and 0.3 in one document.

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::http::json_response;
use crate::task::Worker;

/// The A2A 0.3 protocol version of the card's top-level fields.
pub const PROTOCOL_VERSION: &str = "0.3.0";

/// `GET /.well-known/agent-card.json`: the 1.0 fields (`supportedInterfaces` with a 1.0 and a
/// 0.3 JSON-RPC entry on the same URL) and the 0.3 top-level ones (`url`,
/// `preferredTransport`, `protocolVersion`), so that clients of either version find theirs.
pub fn agent_card(worker: &Worker, local: std::net::SocketAddr) -> Response {
    let cfg = &worker.cfg;
    // Never from the request's Host header: a caller would choose where other clients send
    // their messages.
    let url = cfg.public_url.clone().unwrap_or_else(|| {
        let host = match cfg.host {
            h if h.is_unspecified() => "localhost".to_string(),
            std::net::IpAddr::V6(h) => format!("[{h}]"),
            h => h.to_string(),
        };
        // The port bound, which is the configured one unless that was 0.
        format!("http://{host}:{}/", local.port())
    });
    let frameworks: Vec<&str> = worker.frameworks.iter().map(|f| f.name.as_str()).collect();
    json_response(
        StatusCode::OK,
        &json!({
            "name": cfg.agent_name,
            "description": cfg.agent_description,
            "supportedInterfaces": [
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            ],
            "url": url,
            "preferredTransport": "JSONRPC",
            "protocolVersion": PROTOCOL_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
            "capabilities": {"streaming": true, "pushNotifications": false},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain", "application/json"],
            "skills": [{
                "id": "agentdispatch.agent.run",
                "name": "Run an agent task",
                "description": format!(
                    "Runs the instruction on an agent framework ({}); metadata.framework picks one.",
                    frameworks.join(", ")
                ),
                "tags": ["agent", "agentdispatch"],
                "inputModes": ["text/plain"],
                "outputModes": ["text/plain", "application/json"],
            }],
        }),
    )
}
