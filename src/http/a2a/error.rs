//! The A2A door's JSON-RPC errors: each code by name, and the error object in either version.

use serde_json::{json, Map, Value};

use super::shape::Version;

/// A JSON-RPC error code: JSON-RPC 2.0's own (§5.1) and the A2A-specific ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RpcCode {
    /// The body is not JSON.
    ParseError,
    /// The body is JSON but not a request (no method name).
    InvalidRequest,
    /// No such method.
    MethodNotFound,
    /// The params are wrong (named in the message).
    InvalidParams,
    /// No task has this id.
    TaskNotFound,
    /// The task has already finished.
    TaskNotCancelable,
    /// Push notifications are asked for; this agent sends none.
    PushNotificationNotSupported,
    /// A method this agent does not offer (extended card; subscribing to a finished task).
    UnsupportedOperation,
}

impl RpcCode {
    /// The number on the wire.
    fn number(self) -> i64 {
        match self {
            RpcCode::ParseError => -32700,
            RpcCode::InvalidRequest => -32600,
            RpcCode::MethodNotFound => -32601,
            RpcCode::InvalidParams => -32602,
            RpcCode::TaskNotFound => -32001,
            RpcCode::TaskNotCancelable => -32002,
            RpcCode::PushNotificationNotSupported => -32003,
            RpcCode::UnsupportedOperation => -32004,
        }
    }

    /// The `google.rpc.ErrorInfo` reason A2A 1.0 gives its own codes (JSON-RPC's have none).
    fn reason(self) -> Option<&'static str> {
        match self {
            RpcCode::TaskNotFound => Some("TASK_NOT_FOUND"),
            RpcCode::TaskNotCancelable => Some("TASK_NOT_CANCELABLE"),
            RpcCode::PushNotificationNotSupported => Some("PUSH_NOTIFICATION_NOT_SUPPORTED"),
            RpcCode::UnsupportedOperation => Some("UNSUPPORTED_OPERATION"),
            RpcCode::ParseError
            | RpcCode::InvalidRequest
            | RpcCode::MethodNotFound
            | RpcCode::InvalidParams => None,
        }
    }
}

/// A JSON-RPC error. In 1.0 an A2A-specific error carries a `google.rpc.ErrorInfo` in `data`.
pub(super) struct RpcError {
    pub(super) code: RpcCode,
    pub(super) message: String,
    pub(super) task_id: Option<String>,
}

impl RpcError {
    pub(super) fn new(code: RpcCode, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            task_id: None,
        }
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        RpcError::new(
            RpcCode::InvalidParams,
            format!("Invalid params: {}", message.into()),
        )
    }

    pub(super) fn not_found(task_id: &str) -> Self {
        RpcError {
            task_id: Some(crate::wire::clip(task_id, 200)),
            ..RpcError::new(RpcCode::TaskNotFound, "Task not found")
        }
    }

    pub(super) fn json(&self, v: Version, id: &Value) -> Value {
        let mut error = json!({"code": self.code.number(), "message": self.message});
        if let (Version::V1, Some(reason)) = (v, self.code.reason()) {
            let mut metadata = Map::new();
            if let Some(t) = &self.task_id {
                metadata.insert("taskId".into(), json!(t));
            }
            error["data"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "a2a-protocol.org",
                "metadata": metadata,
            }]);
        }
        json!({"jsonrpc": "2.0", "id": id, "error": error})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a2a_codes_carry_their_reason_in_1_0_only() {
        let e = RpcError::not_found("t-1");
        let v1 = e.json(Version::V1, &json!(1));
        assert_eq!(v1["error"]["code"], -32001);
        assert_eq!(v1["error"]["data"][0]["reason"], "TASK_NOT_FOUND");
        assert_eq!(v1["error"]["data"][0]["metadata"]["taskId"], "t-1");
        let v03 = e.json(Version::V03, &json!(1));
        assert_eq!(v03["error"]["code"], -32001);
        assert!(v03["error"].get("data").is_none(), "{v03}");
        // JSON-RPC's own codes have no ErrorInfo in either version.
        let parse = RpcError::new(RpcCode::ParseError, "Parse error").json(Version::V1, &json!(1));
        assert_eq!(parse["error"]["code"], -32700);
        assert!(parse["error"].get("data").is_none(), "{parse}");
    }
}
