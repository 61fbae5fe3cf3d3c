//! The process's logs and traces: one `tracing` subscriber writing to stderr (`--log-level`,
//! else `RUST_LOG`, else the command's default; `--log-format pretty|json`), and, for `gateway
//! run`, the OTLP/HTTP trace exporter (feature `otel`; `docs/gateway.md`, "Logs and traces").

use std::io::IsTerminal;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colored on a terminal unless `NO_COLOR` is set).
    #[default]
    Pretty,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// Installs the subscriber. `level` (`--log-level`) wins over `RUST_LOG`; `default` applies
/// when neither is given.
///
/// # Errors
///
/// When `level` is not a filter.
pub fn init_logs(level: Option<&str>, format: LogFormat, default: &str) -> anyhow::Result<()> {
    let filter = match level {
        Some(level) => EnvFilter::builder().parse(level).with_context(|| {
            format!("--log-level `{level}` is not a log filter (e.g. `info`, `warn,hearth_server=debug`)")
        })?,
        None => match std::env::var("RUST_LOG") {
            Ok(value) if !value.trim().is_empty() => EnvFilter::builder().parse_lossy(value),
            _ => EnvFilter::new(default),
        },
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

#[cfg(feature = "otel")]
pub use otel::start_traces;

#[cfg(not(feature = "otel"))]
pub use no_otel::start_traces;

#[cfg(feature = "otel")]
mod otel {
    use std::collections::HashMap;

    use hearth_config::{Config, Env};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{
        BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
    };

    /// The running exporter; [`Traces::shutdown`] sends what is still queued.
    #[derive(Debug)]
    pub struct Traces(SdkTracerProvider);

    impl Traces {
        /// Flushes the queued spans and stops the exporter (blocks: call it outside the
        /// runtime).
        pub fn shutdown(self) {
            if let Err(e) = self.0.shutdown() {
                tracing::warn!(error = %e, "Trace export did not shut down cleanly.");
            }
        }
    }

    /// Starts trace export when `diagnostics.otel.enabled` is true, or when it is not set and
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is; `None` when
    /// export is off (`OTEL_SDK_DISABLED=true` and `OTEL_TRACES_EXPORTER=none` turn it off too).
    ///
    /// # Errors
    ///
    /// When the exporter cannot be built (an invalid endpoint, a header that is not one).
    pub fn start_traces(config: &Config, env: &dyn Env) -> anyhow::Result<Option<Traces>> {
        let otel = &config.diagnostics.otel;
        let set = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());
        let from_env = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
            || set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        if disabled || !otel.traces || !otel.enabled.unwrap_or(from_env) {
            return Ok(None);
        }
        // The exporter's HTTP client uses rustls with the provider hearth installs.
        hearth_upstream::client::install_crypto();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary);
        if let Some(endpoint) = otel.traces_endpoint() {
            exporter = exporter.with_endpoint(endpoint);
        }
        if !otel.headers.is_empty() {
            let mut headers = HashMap::new();
            for (name, value) in &otel.headers {
                let value = value
                    .resolve(env)
                    .map_err(|e| anyhow::anyhow!("diagnostics.otel.headers.{name}: {e}"))?;
                if let Some(value) = value {
                    headers.insert(name.clone(), value.expose().to_owned());
                }
            }
            exporter = exporter.with_headers(headers);
        }
        let exporter = exporter.build().map_err(|e| anyhow::anyhow!("OTLP trace exporter: {e}"))?;
        let mut batch = BatchConfigBuilder::default();
        if let Some(interval) = otel.flush_interval {
            batch = batch.with_scheduled_delay(interval);
        }
        let processor =
            BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build();
        let service = otel
            .service_name
            .clone()
            .or_else(|| set("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "hearth".to_owned());
        let mut provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(Resource::builder().with_service_name(service).build());
        if let Some(rate) = otel.sample_rate {
            provider = provider.with_sampler(Sampler::TraceIdRatioBased(rate));
        }
        let provider = provider.build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        hearth_server::telemetry::enable_traces();
        tracing::info!(
            endpoint = otel.traces_endpoint().as_deref().unwrap_or("from OTEL_EXPORTER_OTLP_*"),
            "Trace export on (OTLP/HTTP protobuf)."
        );
        Ok(Some(Traces(provider)))
    }
}

#[cfg(not(feature = "otel"))]
mod no_otel {
    use hearth_config::{Config, Env};

    /// Trace export is not built into this binary.
    #[derive(Debug)]
    pub struct Traces;

    impl Traces {
        pub fn shutdown(self) {}
    }

    /// Says once that export was asked for but is not built in.
    pub fn start_traces(config: &Config, env: &dyn Env) -> anyhow::Result<Option<Traces>> {
        let asked = config.diagnostics.otel.enabled.unwrap_or_else(|| {
            env.var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || env.var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        });
        if asked {
            tracing::warn!(
                "Trace export was asked for, but this hearth was built without the `otel` feature."
            );
        }
        Ok(None)
    }
}
