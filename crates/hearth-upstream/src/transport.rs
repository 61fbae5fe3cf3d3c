//! The door the router sends model calls through: one trait, the HTTP [`Client`] behind it,
//! and the router's pool of clients (one per provider).
//!
//! Invariant: a transport only moves one call; it never retries, sleeps or fails over (the
//! router's policy decides that). `Err` means nothing was received; once `Ok`, failures arrive
//! as a terminal `Event::Error` in the stream (Invariant 1 of `router`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use hearth_config::{Env, Provider, SecretString};

use crate::client::{Client, EventStream};
use crate::encode::Target;
use crate::event::UpstreamError;
use crate::prompt::Prompt;

/// Sends one call of `prompt` to `target` with one credential (`None`: the provider's
/// `apiKey`). Tests implement it with scripted answers, so the router runs without HTTP (and
/// on tokio's paused clock).
pub trait Transport: Send + Sync {
    fn send(
        &self,
        target: &Target<'_>,
        prompt: &Prompt,
        env: &(dyn Env + Sync),
        key: Option<&SecretString>,
    ) -> impl Future<Output = Result<EventStream, UpstreamError>> + Send;
}

/// The router's HTTP clients, one per provider, rebuilt when the provider's config changed.
#[derive(Debug, Default)]
pub struct Clients {
    clients: Mutex<HashMap<String, Client>>,
}

// === impl Client ===

impl Transport for Client {
    fn send(
        &self,
        target: &Target<'_>,
        prompt: &Prompt,
        env: &(dyn Env + Sync),
        key: Option<&SecretString>,
    ) -> impl Future<Output = Result<EventStream, UpstreamError>> + Send {
        self.send_with_key(target, prompt, env, key)
    }
}

// === impl Clients ===

impl Clients {
    /// The client of `provider`, built on first use (and again when the provider changed).
    pub fn client(&self, provider: &Provider) -> Result<Client, UpstreamError> {
        if let Some(c) = self.lock().get(&provider.id)
            && c.built_for(provider)
        {
            return Ok(c.clone());
        }
        // Built without the lock held: it takes milliseconds (TLS roots).
        let client = Client::new(provider)?;
        let mut clients = self.lock();
        match clients.get(&provider.id) {
            Some(c) if c.built_for(provider) => Ok(c.clone()),
            _ => {
                clients.insert(provider.id.clone(), client.clone());
                Ok(client)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        // The map is valid whatever a panicking holder did (it only inserts whole clients).
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for Clients {
    async fn send(
        &self,
        target: &Target<'_>,
        prompt: &Prompt,
        env: &(dyn Env + Sync),
        key: Option<&SecretString>,
    ) -> Result<EventStream, UpstreamError> {
        let client = self.client(target.provider)?;
        client.send_with_key(target, prompt, env, key).await
    }
}
