//! `BotApi`: a local Telegram Bot API server on 127.0.0.1 for the Telegram channel's tests
//! (Telegram itself cannot be reached from the test machines).
//!
//! It follows the request and response shapes of the Bot API documentation,
//! <https://core.telegram.org/bots/api>, as read on 2026-12-03 (the documentation's own pages
//! for "Making requests" and `sendMessage`, and its text for the rest as quoted in the
//! client libraries' generated references):
//! - requests: `GET` or `POST` to `/bot<token>/<METHOD>` (method names case-insensitive),
//!   parameters from the query string, an `application/x-www-form-urlencoded` body or an
//!   `application/json` body;
//! - answers: `{"ok": true, "result": …}`, or `{"ok": false, "error_code": N, "description":
//!   "…", "parameters": {"retry_after": S}}` with the same HTTP status; a wrong token is
//!   `401 Unauthorized`, an unknown method `404 Not Found`;
//! - `getMe`: the bot's `User` (`id`, `is_bot`, `first_name`, `username`, `can_join_groups`,
//!   `can_read_all_group_messages`, `supports_inline_queries`);
//! - `getUpdates`: `offset` (every update below it is confirmed and forgotten; a negative
//!   offset keeps only the last `-offset` updates), `limit` (1–100, default 100), `timeout`
//!   (seconds of long polling, default 0: the request is held until an update arrives or the
//!   time is up), `allowed_updates` (kept until changed; updates of other types created after
//!   it are dropped); a second `getUpdates` while one is held ends the first with `409
//!   Conflict: terminated by other getUpdates request`;
//! - `Update` (`update_id` and one of `message`, …), `Message` (`message_id`, `from`, `chat`,
//!   `date`, `text`, `entities`, `reply_to_message`, `photo`, `sticker`, `caption`), `Chat`
//!   (`id`, `type`: `private` | `group` | `supergroup`, `title`, `first_name`, `username`),
//!   `User`, and `MessageEntity` (`type` `mention` / `text_mention` / `bot_command`,
//!   `offset` and `length` in UTF-16 code units, `user` for `text_mention`);
//! - `sendMessage`: `chat_id` (integer or string), `text` (1–4096 characters: longer is `400
//!   Bad Request: message is too long`, empty is `400 Bad Request: message text is empty`),
//!   `reply_parameters.message_id` or the older `reply_to_message_id` (a missing message is
//!   `400 Bad Request: message to be replied not found` unless
//!   `allow_sending_without_reply`); an unknown chat is `400 Bad Request: chat not found`;
//!   the sent `Message` comes back;
//! - `sendChatAction`: `chat_id`, `action` (`typing`, `upload_photo`, …); `true` comes back.
//!
//! Tests script it: push updates from users (private chats and groups, with or without
//! mention entities or a reply to the bot), read what the bot sent, make the next calls of a
//! method fail (500, 429 with `retry_after`, a dropped connection, any raw answer), stop it
//! and start it again on the same port with its state kept, and count calls.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// The most characters `sendMessage` accepts (the documentation's "1-4096 characters").
pub const MAX_TEXT_CHARS: usize = 4096;

/// The most bytes of a request head or body the server reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 1 << 20;

/// The chat actions `sendChatAction` knows.
const CHAT_ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// A Telegram user (the sender of a pushed message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

impl User {
    pub fn new(id: i64, first_name: &str) -> Self {
        User { id, first_name: first_name.to_owned(), last_name: None, username: None }
    }

    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    pub fn last_name(mut self, last_name: &str) -> Self {
        self.last_name = Some(last_name.to_owned());
        self
    }

    fn to_json(&self, is_bot: bool) -> Value {
        let mut user = json!({ "id": self.id, "is_bot": is_bot, "first_name": self.first_name });
        if let Some(last) = &self.last_name {
            user["last_name"] = json!(last);
        }
        if let Some(username) = &self.username {
            user["username"] = json!(username);
        }
        user
    }
}

/// The kind of chat a message is pushed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatType {
    Private,
    Group,
    Supergroup,
}

impl ChatType {
    fn wire(self) -> &'static str {
        match self {
            ChatType::Private => "private",
            ChatType::Group => "group",
            ChatType::Supergroup => "supergroup",
        }
    }
}

/// What a pushed message carries besides (or instead of) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Photo,
    Sticker,
}

/// A message from a user, to push as an update.
#[derive(Debug, Clone)]
pub struct Message {
    chat_id: i64,
    chat_type: ChatType,
    title: Option<String>,
    from: User,
    text: String,
    entities: Vec<Value>,
    reply_to: Option<i64>,
    media: Option<Media>,
}

impl Message {
    /// A message in the private chat with `from` (whose chat id is the user's id).
    pub fn private(from: User) -> Self {
        Message {
            chat_id: from.id,
            chat_type: ChatType::Private,
            title: None,
            from,
            text: String::new(),
            entities: Vec::new(),
            reply_to: None,
            media: None,
        }
    }

    /// A message in a basic group.
    pub fn group(chat_id: i64, title: &str, from: User) -> Self {
        Message {
            chat_type: ChatType::Group,
            chat_id,
            title: Some(title.to_owned()),
            ..Self::private(from)
        }
    }

    /// A message in a supergroup (ids like `-100…`).
    pub fn supergroup(chat_id: i64, title: &str, from: User) -> Self {
        Message { chat_type: ChatType::Supergroup, ..Self::group(chat_id, title, from) }
    }

    /// Appends plain text.
    pub fn text(mut self, text: &str) -> Self {
        self.text.push_str(text);
        self
    }

    /// Appends `@username` with its `mention` entity.
    pub fn mention(mut self, username: &str) -> Self {
        let mention = format!("@{username}");
        self.entities.push(json!({
            "type": "mention",
            "offset": utf16_len(&self.text),
            "length": utf16_len(&mention),
        }));
        self.text.push_str(&mention);
        self
    }

    /// Appends `label` as a `text_mention` of the user `user_id` (how clients mention a user
    /// without a username).
    pub fn text_mention(mut self, label: &str, user_id: i64, first_name: &str) -> Self {
        self.entities.push(json!({
            "type": "text_mention",
            "offset": utf16_len(&self.text),
            "length": utf16_len(label),
            "user": { "id": user_id, "is_bot": false, "first_name": first_name },
        }));
        self.text.push_str(label);
        self
    }

    /// Appends a raw entity as it is (tests of malformed entities).
    pub fn raw_entity(mut self, entity: Value) -> Self {
        self.entities.push(entity);
        self
    }

    /// A reply to the message `message_id` of the same chat (the bot's, or anyone's).
    pub fn reply_to(mut self, message_id: i64) -> Self {
        self.reply_to = Some(message_id);
        self
    }

    /// A photo or sticker; the text, if any, becomes the caption.
    pub fn media(mut self, media: Media) -> Self {
        self.media = Some(media);
        self
    }
}

/// What a push created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub update_id: i64,
    pub message_id: i64,
}

/// A message the bot sent with `sendMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    pub reply_to: Option<i64>,
}

/// How a scripted failure answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `500 Internal Server Error`.
    Internal,
    /// `429 Too Many Requests: retry after N` with `parameters.retry_after`.
    TooManyRequests { retry_after: u64 },
    /// The request is read and the connection dropped without an answer.
    Disconnect,
    /// Any status and body, byte for byte (huge, binary, malformed answers).
    Raw { status: u16, body: Vec<u8> },
}

/// One call the server received (the token is never recorded).
#[derive(Debug, Clone)]
pub struct Call {
    /// The method as the documentation spells it (`getUpdates`), or as requested when unknown.
    pub method: String,
    /// The parameters, merged from the query string and the body.
    pub params: Value,
    /// The answer's HTTP status; 0 while it is held (a long poll) or when the connection was
    /// dropped without one.
    pub status: u16,
}

/// The local Bot API server. Dropping it stops it.
#[derive(Debug)]
pub struct BotApi {
    addr: SocketAddr,
    state: Arc<State>,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct State {
    token: String,
    bot: User,
    inner: Mutex<Inner>,
    /// Woken when an update is pushed or a newer `getUpdates` arrives.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next_update_id: i64,
    /// Unconfirmed updates, oldest first.
    queue: VecDeque<(i64, Value)>,
    allowed_updates: Option<Vec<String>>,
    /// Bumped by every `getUpdates`: a held poll whose number is no longer current ends with 409.
    poll_generation: u64,
    /// Every message in every chat, by (chat, message id), for replies.
    messages: HashMap<(i64, i64), Value>,
    next_message_id: HashMap<i64, i64>,
    chats: HashMap<i64, Value>,
    sent: Vec<Sent>,
    actions: Vec<(i64, String)>,
    faults: HashMap<String, VecDeque<Fault>>,
    calls: Vec<Call>,
}

/// One answer: status, JSON body, or a dropped connection.
enum Answer {
    Reply { status: u16, body: Vec<u8> },
    Disconnect,
}

// === impl BotApi ===

impl BotApi {
    /// Starts on 127.0.0.1 with a free port, for the bot `@username` with `token` (its id is
    /// the number before the token's `:`, as in real tokens, else 1).
    pub async fn start(token: &str, username: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let bot_id = token.split(':').next().and_then(|id| id.parse().ok()).unwrap_or(1);
        let state = Arc::new(State {
            token: token.to_owned(),
            bot: User::new(bot_id, "Hearth").username(username),
            inner: Mutex::new(Inner { next_update_id: 100_000, ..Inner::default() }),
            wake: Notify::new(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(BotApi { addr, state, task: Mutex::new(Some(task)) })
    }

    /// `http://127.0.0.1:PORT`: the channel's `apiRoot`.
    pub fn api_root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bot's user id.
    pub fn bot_id(&self) -> i64 {
        self.state.bot.id
    }

    /// Pushes a message from a user as a new update; wakes a held `getUpdates`.
    pub fn push(&self, message: Message) -> Pushed {
        let mut inner = self.state.lock();
        let chat = chat_json(&message);
        inner.chats.insert(message.chat_id, chat.clone());
        let message_id = inner.next_message_id(message.chat_id);
        let mut body = json!({
            "message_id": message_id,
            "from": message.from.to_json(false),
            "chat": chat,
            "date": unix_now(),
        });
        let text_key = if message.media.is_some() { "caption" } else { "text" };
        let entities_key = if message.media.is_some() { "caption_entities" } else { "entities" };
        if !message.text.is_empty() {
            body[text_key] = json!(message.text);
        }
        if !message.entities.is_empty() {
            body[entities_key] = Value::Array(message.entities.clone());
        }
        match message.media {
            Some(Media::Photo) => {
                body["photo"] = json!([{
                    "file_id": "AgACAgIAAxkBAAIB", "file_unique_id": "AQADAgAT",
                    "width": 90, "height": 90, "file_size": 1024,
                }]);
            }
            Some(Media::Sticker) => {
                body["sticker"] = json!({
                    "file_id": "CAACAgIAAxkBAAIC", "file_unique_id": "AgADAgAT",
                    "type": "regular", "width": 512, "height": 512,
                    "is_animated": false, "is_video": false,
                });
            }
            None => {}
        }
        if let Some(reply_to) = message.reply_to
            && let Some(original) = inner.messages.get(&(message.chat_id, reply_to))
        {
            body["reply_to_message"] = original.clone();
        }
        inner.messages.insert((message.chat_id, message_id), body.clone());
        let update_id = inner.push_update("message", json!({ "message": body }));
        drop(inner);
        self.state.wake.notify_waiters();
        Pushed { update_id, message_id }
    }

    /// Pushes a raw update (an `update_id` is added when it has none); returns its id.
    pub fn push_raw(&self, update: Value) -> i64 {
        let mut inner = self.state.lock();
        let kind = update
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "update_id").cloned())
            .unwrap_or_default();
        let update_id = match update.get("update_id").and_then(Value::as_i64) {
            Some(id) => {
                inner.next_update_id = inner.next_update_id.max(id.saturating_add(1));
                inner.queue.push_back((id, update));
                id
            }
            None => inner.push_update(&kind, update),
        };
        drop(inner);
        self.state.wake.notify_waiters();
        update_id
    }

    /// Every message the bot sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().sent.clone()
    }

    /// Every chat action the bot sent: (chat id, action).
    pub fn actions(&self) -> Vec<(i64, String)> {
        self.state.lock().actions.clone()
    }

    /// Updates not yet confirmed by a `getUpdates` with a higher offset.
    pub fn pending(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// The next `n` calls of `method` (case-insensitive) answer with `fault`.
    pub fn fail_next(&self, method: &str, n: usize, fault: Fault) {
        let mut inner = self.state.lock();
        let queue = inner.faults.entry(method.to_ascii_lowercase()).or_default();
        queue.extend(std::iter::repeat_n(fault, n));
    }

    /// Forgets every scripted failure not yet used.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// How many calls of `method` (case-insensitive) arrived, failed ones included.
    pub fn calls(&self, method: &str) -> usize {
        self.state.lock().calls.iter().filter(|c| c.method.eq_ignore_ascii_case(method)).count()
    }

    /// Every call, in order.
    pub fn requests(&self) -> Vec<Call> {
        self.state.lock().calls.clone()
    }

    /// Stops listening and drops every open connection (a held long poll included); the
    /// state stays for [`BotApi::restart`].
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            // The listener and every connection are closed once the task is gone.
            let _ = task.await;
        }
    }

    /// Listens again on the same port, with the state it had.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&self.state)));
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(())
    }
}

impl Drop for BotApi {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

// === impl State ===

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn answer(
        &self,
        http_method: &str,
        target: &str,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let Some((token, method)) = path.strip_prefix("/bot").and_then(|rest| rest.split_once('/'))
        else {
            return error(404, "Not Found", None);
        };
        if http_method != "GET" && http_method != "POST" {
            return error(405, "Method Not Allowed", None);
        }
        let params = match parse_params(query, content_type, body) {
            Ok(params) => params,
            Err(description) => return error(400, &description, None),
        };
        let key = method.to_ascii_lowercase();
        let name = match key.as_str() {
            "getme" => "getMe",
            "getupdates" => "getUpdates",
            "sendmessage" => "sendMessage",
            "sendchataction" => "sendChatAction",
            _ => method,
        }
        .to_owned();
        // Recorded on arrival (a held long poll counts at once); the status follows.
        let index = {
            let mut inner = self.lock();
            inner.calls.push(Call {
                method: name,
                params: Value::Object(params.clone()),
                status: 0,
            });
            inner.calls.len() - 1
        };
        let answer = self.dispatch(&key, token, &params).await;
        if let Answer::Reply { status, .. } = &answer
            && let Some(call) = self.lock().calls.get_mut(index)
        {
            call.status = *status;
        }
        answer
    }

    async fn dispatch(&self, key: &str, token: &str, params: &Map<String, Value>) -> Answer {
        if token != self.token {
            return error(401, "Unauthorized", None);
        }
        let fault = self.lock().faults.get_mut(key).and_then(VecDeque::pop_front);
        match fault {
            Some(Fault::Internal) => return error(500, "Internal Server Error", None),
            Some(Fault::TooManyRequests { retry_after }) => {
                return error(
                    429,
                    &format!("Too Many Requests: retry after {retry_after}"),
                    Some(retry_after),
                );
            }
            Some(Fault::Disconnect) => return Answer::Disconnect,
            Some(Fault::Raw { status, body }) => return Answer::Reply { status, body },
            None => {}
        }
        match key {
            "getme" => ok(self.bot_json()),
            "getupdates" => self.get_updates(params).await,
            "sendmessage" => self.send_message(params),
            "sendchataction" => self.send_chat_action(params),
            _ => error(404, "Not Found", None),
        }
    }

    fn bot_json(&self) -> Value {
        let mut bot = self.bot.to_json(true);
        bot["can_join_groups"] = json!(true);
        bot["can_read_all_group_messages"] = json!(false);
        bot["supports_inline_queries"] = json!(false);
        bot
    }

    async fn get_updates(&self, params: &Map<String, Value>) -> Answer {
        let offset = match int_param(params, "offset") {
            Ok(offset) => offset,
            Err(answer) => return answer,
        };
        let limit = match int_param(params, "limit") {
            Ok(limit) => limit.unwrap_or(100).clamp(1, 100),
            Err(answer) => return answer,
        };
        let timeout = match int_param(params, "timeout") {
            // Bounded so a hostile value cannot overflow the deadline.
            Ok(timeout) => timeout.unwrap_or(0).clamp(0, 3600),
            Err(answer) => return answer,
        };
        let allowed = match params.get("allowed_updates") {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            // Query strings and forms carry it JSON-serialized.
            Some(Value::String(text)) => match serde_json::from_str::<Vec<Value>>(text) {
                Ok(list) => Some(list),
                Err(_) => {
                    return error(400, "Bad Request: can't parse allowed_updates JSON array", None);
                }
            },
            Some(_) => {
                return error(400, "Bad Request: can't parse allowed_updates JSON array", None);
            }
        };
        let generation = {
            let mut inner = self.lock();
            if let Some(list) = allowed {
                inner.allowed_updates =
                    Some(list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
            }
            match offset {
                Some(offset) if offset < 0 => {
                    let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
                    let drop_n = inner.queue.len().saturating_sub(keep);
                    inner.queue.drain(..drop_n);
                }
                Some(offset) => inner.queue.retain(|(id, _)| *id >= offset),
                None => {}
            }
            inner.poll_generation += 1;
            inner.poll_generation
        };
        // A newer poll ends any held one.
        self.wake.notify_waiters();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout.unsigned_abs());
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let inner = self.lock();
                if inner.poll_generation != generation {
                    return error(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                        None,
                    );
                }
                if !inner.queue.is_empty() || tokio::time::Instant::now() >= deadline {
                    let n = usize::try_from(limit).unwrap_or(100);
                    let batch: Vec<Value> =
                        inner.queue.iter().take(n).map(|(_, update)| update.clone()).collect();
                    return ok(Value::Array(batch));
                }
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn send_message(&self, params: &Map<String, Value>) -> Answer {
        let mut inner = self.lock();
        let chat_id = match inner.chat_param(params) {
            Ok(chat_id) => chat_id,
            Err(answer) => return answer,
        };
        let text = match params.get("text") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        if text.trim().is_empty() {
            return error(400, "Bad Request: message text is empty", None);
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return error(400, "Bad Request: message is too long", None);
        }
        let reply_to = match params.get("reply_parameters") {
            Some(Value::Object(reply)) => reply.get("message_id").and_then(as_int),
            Some(Value::String(text)) => serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("message_id").and_then(as_int)),
            _ => None,
        }
        .or_else(|| params.get("reply_to_message_id").and_then(as_int));
        let without_reply = params
            .get("allow_sending_without_reply")
            .is_some_and(|v| v == &json!(true) || v == &json!("true"));
        let original = reply_to.and_then(|id| inner.messages.get(&(chat_id, id)).cloned());
        if reply_to.is_some() && original.is_none() && !without_reply {
            return error(400, "Bad Request: message to be replied not found", None);
        }
        let message_id = inner.next_message_id(chat_id);
        let mut message = json!({
            "message_id": message_id,
            "from": self.bot.to_json(true),
            "chat": inner.chats.get(&chat_id).cloned().unwrap_or(Value::Null),
            "date": unix_now(),
            "text": text,
        });
        let reply_to = original.as_ref().and(reply_to);
        if let Some(original) = original {
            message["reply_to_message"] = original;
        }
        inner.messages.insert((chat_id, message_id), message.clone());
        inner.sent.push(Sent { chat_id, message_id, text, reply_to });
        ok(message)
    }

    fn send_chat_action(&self, params: &Map<String, Value>) -> Answer {
        let mut inner = self.lock();
        let chat_id = match inner.chat_param(params) {
            Ok(chat_id) => chat_id,
            Err(answer) => return answer,
        };
        let action = params.get("action").and_then(Value::as_str).unwrap_or_default();
        if action.is_empty() {
            return error(400, "Bad Request: action is empty", None);
        }
        if !CHAT_ACTIONS.contains(&action) {
            return error(400, "Bad Request: wrong parameter action in request", None);
        }
        inner.actions.push((chat_id, action.to_owned()));
        ok(json!(true))
    }
}

// === impl Inner ===

impl Inner {
    fn next_message_id(&mut self, chat_id: i64) -> i64 {
        let next = self.next_message_id.entry(chat_id).or_insert(1);
        let id = *next;
        *next += 1;
        id
    }

    /// Queues an update of `kind` unless `allowed_updates` leaves that kind out.
    fn push_update(&mut self, kind: &str, mut update: Value) -> i64 {
        let update_id = self.next_update_id;
        self.next_update_id = self.next_update_id.saturating_add(1);
        let allowed = match &self.allowed_updates {
            // An empty list means every kind (the documentation's default set).
            Some(list) if !list.is_empty() => list.iter().any(|k| k == kind),
            _ => true,
        };
        if allowed {
            update["update_id"] = json!(update_id);
            self.queue.push_back((update_id, update));
        }
        update_id
    }

    /// `chat_id` as a known chat: an integer, a numeric string, or `@username`.
    fn chat_param(&self, params: &Map<String, Value>) -> Result<i64, Answer> {
        let chat_id = match params.get("chat_id") {
            None => return Err(error(400, "Bad Request: chat_id is empty", None)),
            Some(Value::String(name)) if name.starts_with('@') => self
                .chats
                .iter()
                .find(|(_, chat)| chat.get("username").and_then(Value::as_str) == Some(&name[1..]))
                .map(|(id, _)| *id),
            Some(value) => as_int(value),
        };
        match chat_id {
            Some(chat_id) if self.chats.contains_key(&chat_id) => Ok(chat_id),
            _ => Err(error(400, "Bad Request: chat not found", None)),
        }
    }
}

// === the HTTP/1.1 side ===

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let _ = serve(socket, state).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers requests on one keep-alive connection until the client closes it.
async fn serve(mut socket: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Ok(());
            }
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let http_method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        if length > MAX_BODY_BYTES {
            let body = error_body(413, "Request Entity Too Large", None);
            write_reply(&mut socket, 413, &body, true).await?;
            return Ok(());
        }
        let close = header("connection").eq_ignore_ascii_case("close");
        let content_type = header("content-type").to_owned();
        buf.drain(..head_end);
        while buf.len() < length {
            let mut chunk = vec![0u8; length - buf.len()];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        match state.answer(&http_method, &target, &content_type, &body).await {
            Answer::Disconnect => return Ok(()),
            Answer::Reply { status, body } => {
                write_reply(&mut socket, status, &body, close).await?
            }
        }
        if close {
            return Ok(());
        }
    }
}

async fn write_reply(
    socket: &mut TcpStream,
    status: u16,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Scripted",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.flush().await
}

// === helpers ===

fn ok(result: Value) -> Answer {
    let body = json!({ "ok": true, "result": result });
    Answer::Reply { status: 200, body: body.to_string().into_bytes() }
}

fn error(status: u16, description: &str, retry_after: Option<u64>) -> Answer {
    Answer::Reply { status, body: error_body(status, description, retry_after) }
}

fn error_body(status: u16, description: &str, retry_after: Option<u64>) -> Vec<u8> {
    let mut body = json!({ "ok": false, "error_code": status, "description": description });
    if let Some(retry_after) = retry_after {
        body["parameters"] = json!({ "retry_after": retry_after });
    }
    body.to_string().into_bytes()
}

fn chat_json(message: &Message) -> Value {
    match message.chat_type {
        ChatType::Private => {
            let mut chat = json!({
                "id": message.chat_id,
                "type": "private",
                "first_name": message.from.first_name,
            });
            if let Some(username) = &message.from.username {
                chat["username"] = json!(username);
            }
            chat
        }
        kind => json!({ "id": message.chat_id, "type": kind.wire(), "title": message.title }),
    }
}

/// An integer parameter, from a JSON number or a numeric string.
fn int_param(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, Answer> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_int(value)
            .map(Some)
            .ok_or_else(|| error(400, &format!("Bad Request: wrong parameter {name}"), None)),
    }
}

fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parameters from the query string and the body (JSON or form), the body winning.
fn parse_params(
    query: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    for (name, value) in form_pairs(query) {
        params.insert(name, Value::String(value));
    }
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if body.is_empty() {
        return Ok(params);
    }
    match media_type.as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => params.extend(object),
            Ok(_) | Err(_) => return Err("Bad Request: can't parse JSON object".to_owned()),
        },
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| "Bad Request: request body is not valid UTF-8".to_owned())?;
            for (name, value) in form_pairs(text) {
                params.insert(name, Value::String(value));
            }
        }
        _ => return Err("Bad Request: unsupported request body".to_owned()),
    }
    Ok(params)
}

fn form_pairs(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(name), percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
