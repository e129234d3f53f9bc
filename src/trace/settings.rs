//! What the standard OpenTelemetry variables ask of the worker's spans: whether to export, to
//! which OTLP/HTTP endpoint, with which headers and timeout, under which resource.
//!
//! The worker exports only when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` names an endpoint (the SDKs' default of localhost:4318 would
//! make every worker try a collector that is usually not there). A value it cannot use is said
//! once at start-up and tracing stays off: as the OpenTelemetry SDKs do, a bad telemetry
//! setting never stops the service.

use std::time::Duration;

use warp::http::{HeaderName, HeaderValue, Uri};

use super::context::percent_decode;

/// Where and how spans are sent.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The full URL spans are posted to (`…/v1/traces`).
    pub uri: Uri,
    /// `host:port` to connect to.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Bound of one export (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds; default 10 s).
    pub timeout: Duration,
    /// Resource attributes, `service.name` first.
    pub resource: Vec<(String, String)>,
}

/// Tracing off, and why when a variable asked for something the worker does not do (said in
/// the log once); `None` when nothing asked for export.
pub type Off = Option<String>;

/// The signal-specific variable when set and not empty, else the general one.
fn either(
    get: &impl Fn(&str) -> Option<String>,
    specific: &str,
    general: &str,
) -> Option<(String, String)> {
    let read = |name: &str| {
        get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| (name.to_string(), v))
    };
    read(specific).or_else(|| read(general))
}

/// `k=v,k2=v2` with percent-encoded values (the W3C baggage format the OTel variables use);
/// a malformed member is skipped and said in `warnings`.
fn pairs(var: &str, value: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for member in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match member
            .split_once('=')
            .map(|(k, v)| (k.trim(), percent_decode(v.trim())))
        {
            Some((k, Some(v))) if !k.is_empty() => out.push((k.to_string(), v)),
            _ => warnings.push(format!("{var}: ignoring {member:?}: not key=value")),
        }
    }
    out
}

/// The settings the environment asks for, or why tracing is off; `warnings` collects what was
/// skipped on the way (said in the log at start-up).
pub fn from_env(
    get: impl Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Settings, Off> {
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Err(None);
    }
    let endpoint = match either(
        &get,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ) {
        None => return Err(None),
        // The signal's own endpoint is used as it is; the general one gets the signal's path.
        Some((var, v)) if var == "OTEL_EXPORTER_OTLP_ENDPOINT" => {
            (var, format!("{}/v1/traces", v.trim_end_matches('/')))
        }
        Some(named) => named,
    };
    if let Some(exporters) = get("OTEL_TRACES_EXPORTER").filter(|v| !v.trim().is_empty()) {
        if !exporters.split(',').any(|e| e.trim() == "otlp") {
            return Err(Some(format!(
                "OTEL_TRACES_EXPORTER={exporters}: the worker exports its spans over OTLP only; its spans are not exported"
            )));
        }
    }
    if let Some((var, protocol)) = either(
        &get,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ) {
        if protocol != "http/protobuf" {
            return Err(Some(format!(
                "{var}={protocol}: the worker exports its spans over http/protobuf only; its spans are not exported"
            )));
        }
    }
    let (var, url) = endpoint;
    let uri: Uri = url.parse().map_err(|e| {
        Some(format!(
            "{var}={url} is not a URL ({e}); the worker's spans are not exported"
        ))
    })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(Some(format!(
                "{var}={url}: the worker sends its spans over plain HTTP only (to a collector beside it, such as the ADOT or OpenTelemetry Collector); its spans are not exported"
            )))
        }
        _ => {
            return Err(Some(format!(
                "{var}={url} is not an http:// URL; the worker's spans are not exported"
            )))
        }
    }
    let Some(host) = uri.host().map(|h| h.trim_matches(['[', ']']).to_string()) else {
        return Err(Some(format!(
            "{var}={url} names no host; the worker's spans are not exported"
        )));
    };
    let port = uri.port_u16().unwrap_or(80);
    let mut headers = Vec::new();
    if let Some((var, value)) = either(
        &get,
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ) {
        for (k, v) in pairs(&var, &value, warnings) {
            match (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(v.as_str()),
            ) {
                (Ok(name), Ok(value)) => headers.push((name, value)),
                // The value may be a credential: only the name is said.
                _ => warnings.push(format!("{var}: ignoring header {k:?}: not a valid header")),
            }
        }
    }
    let timeout = match either(
        &get,
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ) {
        None => Duration::from_secs(10),
        Some((var, v)) => match v.parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                warnings.push(format!(
                    "{var}={v} is not a positive number of milliseconds; using 10000"
                ));
                Duration::from_secs(10)
            }
        },
    };
    let mut resource = get("OTEL_RESOURCE_ATTRIBUTES")
        .map(|v| pairs("OTEL_RESOURCE_ATTRIBUTES", &v, warnings))
        .unwrap_or_default();
    // OTEL_SERVICE_NAME wins over a service.name among the resource attributes.
    let named = resource.iter().position(|(k, _)| k == "service.name");
    let service = get("OTEL_SERVICE_NAME")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| named.map(|i| resource[i].1.clone()))
        .unwrap_or_else(|| "agentdispatch-worker".into());
    if let Some(i) = named {
        resource.remove(i);
    }
    resource.insert(0, ("service.name".into(), service));
    resource.push(("telemetry.sdk.name".into(), "agentdispatch-worker".into()));
    resource.push(("telemetry.sdk.language".into(), "rust".into()));
    Ok(Settings {
        uri,
        host,
        port,
        headers,
        timeout,
        resource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> (Result<Settings, Off>, Vec<String>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut warnings = Vec::new();
        (from_env(|k| map.get(k).cloned(), &mut warnings), warnings)
    }

    #[test]
    fn nothing_set_is_off_and_silent() {
        assert!(matches!(settings(&[]).0, Err(None)));
        assert!(matches!(
            settings(&[
                ("OTEL_SERVICE_NAME", "x"),
                ("OTEL_RESOURCE_ATTRIBUTES", "a=b")
            ])
            .0,
            Err(None)
        ));
    }

    #[test]
    fn the_general_endpoint_gets_the_traces_path_the_specific_one_does_not() {
        let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])
            .0
            .expect("on");
        assert_eq!(s.uri.to_string(), "http://c:4318/v1/traces");
        assert_eq!((s.host.as_str(), s.port), ("c", 4318));
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://d/x"),
        ])
        .0
        .expect("on");
        assert_eq!(s.uri.to_string(), "http://d/x");
        assert_eq!(s.port, 80);
    }

    #[test]
    fn disabled_none_grpc_and_https_are_off() {
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert!(matches!(
            settings(&[on, ("OTEL_SDK_DISABLED", "TRUE")]).0,
            Err(None)
        ));
        for extra in [
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ] {
            assert!(
                matches!(settings(&[on, extra]).0, Err(Some(_))),
                "{extra:?}"
            );
        }
        let (s, _) = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")]);
        assert!(matches!(s, Err(Some(why)) if why.contains("plain HTTP")));
    }

    #[test]
    fn service_name_resource_and_headers() {
        let (s, warnings) = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=r,deployment.environment=prod%20eu,bad",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%3Dcret"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ]);
        let s = s.expect("on");
        assert_eq!(s.resource[0], ("service.name".into(), "r".into()));
        assert!(s
            .resource
            .contains(&("deployment.environment".into(), "prod eu".into())));
        assert_eq!(s.headers[0].1, "s=cret");
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=r"),
            ("OTEL_SERVICE_NAME", "s"),
        ])
        .0
        .expect("on");
        assert_eq!(s.resource[0], ("service.name".into(), "s".into()));
        assert_eq!(
            s.resource
                .iter()
                .filter(|(k, _)| k == "service.name")
                .count(),
            1
        );
    }
}
