//! The agent card: A2A 1.0 and 0.3 at once, on the URL the configuration names.

use super::*;

#[tokio::test]
async fn the_card_serves_1_0_and_0_3_on_the_url_from_the_configuration() {
    let w = WorkerBuilder::new()
        .env("AGENTCORE_RUNTIME_URL", "https://runtime.example/agent/")
        .env("AGENTDISPATCH_PUBLIC_URL", "https://public.example/a2a/")
        .start()
        .await;
    let card = w.get("/.well-known/agent-card.json").await.1;
    let url = "https://public.example/a2a/";
    assert_eq!(
        card["supportedInterfaces"],
        json!([
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ])
    );
    assert_eq!(card["url"], url);
    assert_eq!(card["preferredTransport"], "JSONRPC");
    assert_eq!(card["protocolVersion"], "0.3.0");
    assert_eq!(card["capabilities"]["streaming"], true);
    for key in ["name", "description", "version"] {
        assert!(card[key].is_string(), "{key}");
    }
    let skill = &card["skills"][0];
    assert_eq!(skill["id"], "agentdispatch.agent.run");
    for key in ["name", "description"] {
        assert!(skill[key].is_string(), "{key}");
    }
    assert!(skill["tags"].is_array());
    assert!(card["defaultInputModes"].is_array() && card["defaultOutputModes"].is_array());
}
