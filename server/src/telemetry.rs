//! Logs and traces: `tracing` to stderr (text or JSON lines; every call's lines carry its
//! `request` span with `request_id`, `transport` and `rpc`, see [`crate::gate`]), and, in builds
//! with the `otel` cargo feature, spans exported over OTLP/gRPC to `--otel-endpoint`.

use std::io::{self, IsTerminal};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use clap::ValueEnum;
use serde::Deserialize;

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// OpenTelemetry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Where to export spans (OTLP/gRPC); None exports nothing.
    pub otel_endpoint: Option<String>,
    /// The `service.name` of exported spans.
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otel_endpoint: None,
            service_name: "lookout".to_owned(),
        }
    }
}

impl TelemetrySettings {
    pub fn check(&self) -> Result<(), String> {
        if self.otel_endpoint.is_some() && !cfg!(feature = "otel") {
            return Err(
                "otel-endpoint needs a build with OpenTelemetry: cargo build --features otel"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// Keeps the trace exporter running; dropping it flushes and stops it.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("lookout: cannot flush the OpenTelemetry exporter: {e}");
        }
    }
}

/// Sets up logging (and trace export). Must run inside the tokio runtime when exporting.
/// `log_level` is a level or tracing directives (`--log-level`).
pub fn init_logging(
    log_level: &str,
    log_format: LogFormat,
    #[cfg_attr(not(feature = "otel"), allow(unused_variables))] telemetry: &TelemetrySettings,
) -> Result<TelemetryGuard, String> {
    let filter =
        EnvFilter::try_new(log_level).map_err(|e| format!("log-level `{log_level}`: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal());
    let fmt = match log_format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    #[allow(unused_mut, reason = "only the otel build changes the guard")]
    let mut guard = TelemetryGuard::default();
    let registry = tracing_subscriber::registry().with(fmt).with(filter);
    #[cfg(feature = "otel")]
    let registry = {
        let layer = match &telemetry.otel_endpoint {
            Some(endpoint) => {
                let provider = otel::provider(endpoint, &telemetry.service_name)?;
                let layer = otel::layer(&provider);
                guard.provider = Some(provider);
                Some(layer)
            }
            None => None,
        };
        registry.with(layer)
    };
    registry
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(guard)
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    pub fn provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("otel-endpoint `{endpoint}`: {e}"))?;
        let resource = Resource::builder()
            .with_service_name(service_name.to_owned())
            .build();
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build())
    }

    pub fn layer<S>(
        provider: &SdkTracerProvider,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("lookout"))
    }
}
