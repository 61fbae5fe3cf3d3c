//! `/metrics`: Prometheus text via prometheus-client.
//!
//! Invariant: label values are static strings or come from the config snapshot (provider ids,
//! model refs); nothing request-derived (users, sessions, raw `model` strings) becomes a label.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub status_class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub provider: String,
    pub model: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub direction: &'static str,
    pub source: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AbortLabels {
    pub provider: String,
    pub error_kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CooldownLabels {
    pub provider: String,
    pub reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub request_duration: HistogramFamily<RouteOnly>,
    pub upstream_attempts: Family<AttemptLabels, Counter>,
    pub time_to_first_byte: HistogramFamily<ModelLabels>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost: Family<ModelLabels, Counter<f64, AtomicU64>>,
    pub active_streams: Gauge,
    pub ws_connections: Gauge,
    pub fallbacks: Counter,
    pub stream_aborts: Family<AbortLabels, Counter>,
    pub cooldowns: Family<CooldownLabels, Gauge>,
    /// Prompt progress reports from upstreams (llama-server `return_progress`).
    pub prompt_progress: Family<ModelLabels, Counter>,
    /// Prompt processing time as upstreams reported it, once a prompt was read whole.
    pub prompt_processing: HistogramFamily<ModelLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hearth");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status class",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteOnly> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to the response head, by route",
            prometheus_client::registry::Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "upstream_attempts",
            "Upstream attempts by provider, model and outcome class",
            upstream_attempts.clone(),
        );
        let time_to_first_byte: HistogramFamily<ModelLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "upstream_time_to_first_byte",
            "Time from the request to the first upstream event",
            prometheus_client::registry::Unit::Seconds,
            time_to_first_byte.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("tokens", "Tokens by model, direction and source", tokens.clone());
        let cost = Family::<ModelLabels, Counter<f64, AtomicU64>>::default();
        registry.register("cost_usd", "Estimated cost in USD by model", cost.clone());
        let active_streams = Gauge::default();
        registry.register("active_streams", "Open streaming responses", active_streams.clone());
        let ws_connections = Gauge::default();
        registry.register(
            "ws_connections",
            "Open WebSocket control-plane connections",
            ws_connections.clone(),
        );
        let fallbacks = Counter::default();
        registry.register(
            "fallbacks",
            "Requests answered by a candidate other than the first",
            fallbacks.clone(),
        );
        let stream_aborts = Family::<AbortLabels, Counter>::default();
        registry.register(
            "stream_aborts",
            "Streams ended by an upstream failure after the first byte",
            stream_aborts.clone(),
        );
        let cooldowns = Family::<CooldownLabels, Gauge>::default();
        registry.register(
            "upstream_cooldowns",
            "Providers and models cooling down now",
            cooldowns.clone(),
        );
        let prompt_progress = Family::<ModelLabels, Counter>::default();
        registry.register(
            "upstream_prompt_progress",
            "Prompt processing progress reports from upstreams, by provider and model",
            prompt_progress.clone(),
        );
        let prompt_processing: HistogramFamily<ModelLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "upstream_prompt_processing",
            "Prompt processing time reported by upstreams, by provider and model",
            prometheus_client::registry::Unit::Seconds,
            prompt_processing.clone(),
        );
        Metrics {
            registry,
            prompt_progress,
            prompt_processing,
            requests,
            request_duration,
            upstream_attempts,
            time_to_first_byte,
            tokens,
            cost,
            active_streams,
            ws_connections,
            fallbacks,
            stream_aborts,
            cooldowns,
        }
    }
}

/// A `hearth_channel_*` family: name, type, help, and the value of one account.
type ChannelFamily =
    (&'static str, &'static str, &'static str, fn(&hearth_channels::registry::Status) -> u64);

impl Metrics {
    pub fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let status_class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&RouteLabels { route, status_class }).inc();
        self.request_duration.get_or_create(&RouteOnly { route }).observe(elapsed.as_secs_f64());
    }

    /// One prompt progress report of `provider`'s `model` (a config-bounded label): counted,
    /// and its time observed when it is the report that the whole prompt was read (`complete`).
    pub fn observe_progress(
        &self,
        provider: String,
        model: String,
        progress: &hearth_upstream::Progress,
        complete: bool,
    ) {
        let labels = ModelLabels { provider, model };
        self.prompt_progress.get_or_create(&labels).inc();
        if complete {
            self.prompt_processing.get_or_create(&labels).observe(progress.elapsed.as_secs_f64());
        }
    }

    /// The exposition with the channel families (`hearth_channel_*`) of `channels` added.
    pub fn encode_with_channels(
        &self,
        cooldowns: &[hearth_upstream::router::CooldownView],
        channels: &[hearth_channels::registry::Status],
    ) -> String {
        let mut out = self.encode(cooldowns);
        if channels.is_empty() {
            return out;
        }
        let at = out.rfind("# EOF").unwrap_or(out.len());
        let tail = out.split_off(at);
        // Label values are the channel name and the account id from the config (letters,
        // digits, `-`, `_`: nothing to escape).
        let families: [ChannelFamily; 4] = [
            (
                "hearth_channel_connected",
                "gauge",
                "Whether the channel account is connected (1) or not (0).",
                |s| u64::from(s.connected),
            ),
            ("hearth_channel_inbound_messages", "counter", "Inbound messages journaled.", |s| {
                s.inbound_total
            }),
            ("hearth_channel_outbound_messages", "counter", "Outbound messages delivered.", |s| {
                s.outbound_total
            }),
            (
                "hearth_channel_send_failures",
                "counter",
                "Failed send attempts (each retry counts).",
                |s| s.send_failures_total,
            ),
        ];
        for (name, kind, help, value) in families {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            let suffix = if kind == "counter" { "_total" } else { "" };
            for status in channels {
                out.push_str(&format!(
                    "{name}{suffix}{{channel=\"{}\",account=\"{}\"}} {}\n",
                    status.channel,
                    status.account,
                    value(status)
                ));
            }
        }
        out.push_str(&tail);
        out
    }

    /// The Prometheus text exposition.
    pub fn encode(&self, cooldowns: &[hearth_upstream::router::CooldownView]) -> String {
        self.cooldowns.clear();
        for c in cooldowns {
            self.cooldowns
                .get_or_create(&CooldownLabels {
                    provider: c.provider.clone(),
                    reason: c.reason.as_str(),
                })
                .inc();
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
